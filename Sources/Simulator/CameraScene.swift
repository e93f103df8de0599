import Foundation

/// One detection as a detector would post it.
public struct SimulatedDetection: Sendable {
    public var cameraId: String
    public var detectedAt: Date
    public var objectType: String
    public var confidence: Double
    public var bbox: (Int, Int, Int, Int)

    public init(
        cameraId: String, detectedAt: Date, objectType: String, confidence: Double, bbox: (Int, Int, Int, Int)
    ) {
        self.cameraId = cameraId
        self.detectedAt = detectedAt
        self.objectType = objectType
        self.confidence = confidence
        self.bbox = bbox
    }

    /// The body of `POST /api/detections`, or one line of the NDJSON batch.
    public func json() -> String {
        let time = Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(detectedAt)
        let file = "/export/foscam/\(cameraId)/\(Int(detectedAt.timeIntervalSince1970 * 1000)).jpg"
        return
            #"{"camera_id":"\#(cameraId)","file_path":"\#(file)","detected_at":"\#(time)","object_type":"\#(objectType)","confidence":\#(String(format: "%.3f", confidence)),"bbox_x":\#(bbox.0),"bbox_y":\#(bbox.1),"bbox_width":\#(bbox.2),"bbox_height":\#(bbox.3)}"#
    }
}

/// What a camera sees: visits (a person, a car, an animal…) in bursts, more by day than by night.
public enum CameraScene {
    public static let names = ["Front Door", "Backyard", "Garage", "Driveway", "Side Gate", "Porch", "Patio", "Street"]

    /// Object types and their weights among visits.
    public static let mix: [(String, Int)] = [
        ("person", 34), ("car", 24), ("dog", 10), ("cat", 9), ("bicycle", 7), ("package", 5), ("truck", 5),
        ("bird", 6),
    ]

    /// Visits per hour by hour of day (UTC): busy mornings and evenings, quiet nights.
    public static func visitsPerHour(_ hour: Int) -> Double {
        switch hour {
        case 0..<5: 0.3
        case 5..<7: 1.0
        case 7..<9: 3.0
        case 9..<16: 1.8
        case 16..<20: 3.2
        case 20..<23: 1.2
        default: 0.5
        }
    }

    public static func history(
        camera: String, from start: Date, to end: Date, random: inout SplitMix64
    ) -> [SimulatedDetection] {
        var detections: [SimulatedDetection] = []
        var hourStart = start
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        while hourStart < end {
            let rate = visitsPerHour(calendar.component(.hour, from: hourStart))
            // Poisson-ish: whole visits plus one more with the remaining probability.
            var visits = Int(rate)
            if random.unit() < rate - Double(visits) { visits += 1 }
            for _ in 0..<visits {
                let at = hourStart.addingTimeInterval(random.unit() * 3600)
                if at < end { detections += visit(camera: camera, at: at, random: &random) }
            }
            hourStart = hourStart.addingTimeInterval(3600)
        }
        return detections
    }

    /// A burst: 1–6 detections of the same thing a few seconds apart, sometimes with a second object.
    public static func visit(camera: String, at start: Date, random: inout SplitMix64) -> [SimulatedDetection] {
        let object = pick(&random)
        let companion = random.unit() < 0.2 ? pick(&random) : nil
        let count = 1 + Int(random.next() % 6)
        var time = start
        var detections: [SimulatedDetection] = []
        for index in 0..<count {
            let type = index > 0 && companion != nil && random.unit() < 0.4 ? companion! : object
            // Mostly 0.55–0.88; a person is sometimes seen clearly (≥ 0.9: the fast path).
            var confidence = 0.55 + random.unit() * 0.33
            if type == "person" && random.unit() < 0.08 { confidence = 0.9 + random.unit() * 0.09 }
            if random.unit() < 0.05 { confidence = 0.3 + random.unit() * 0.2 }  // below the threshold
            let width = 40 + Int(random.next() % 300)
            let height = 40 + Int(random.next() % 400)
            detections.append(
                SimulatedDetection(
                    cameraId: camera, detectedAt: time, objectType: type, confidence: confidence,
                    bbox: (Int(random.next() % 1500), Int(random.next() % 800), width, height)))
            time = time.addingTimeInterval(2 + random.unit() * 8)
        }
        return detections
    }

    public static func pick(_ random: inout SplitMix64) -> String {
        let total = mix.reduce(0) { $0 + $1.1 }
        var roll = Int(random.next() % UInt64(total))
        for (type, weight) in mix {
            if roll < weight { return type }
            roll -= weight
        }
        return mix[0].0
    }
}

/// A small seeded generator, so a seed gives the same history.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A Double in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
