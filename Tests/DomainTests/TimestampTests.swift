import Domain
import Foundation
import Testing

/// Strict ISO 8601 reading of client timestamps, and the one rule for event times.
@Suite struct TimestampTests {
    @Test(arguments: [
        ("2026-11-23T15:11:07Z", 1_795_446_667.0),
        ("2026-11-23T15:11:07.125Z", 1_795_446_667.125),
        ("2026-11-23T15:11:07.123456Z", 1_795_446_667.123456),
        ("2026-11-23T15:11:07", 1_795_446_667.0),
        ("2026-11-23T16:11:07+01:00", 1_795_446_667.0),
        ("2026-11-23T14:41:07-0030", 1_795_446_667.0),
        ("2026-11-23 15:11:07z", 1_795_446_667.0),
        ("2026-11-23T15:11Z", 1_795_446_660.0),
        ("2024-02-29T00:00:00Z", 1_709_164_800.0),
        ("2000-01-01T00:00:00Z", 946_684_800.0),
        ("1970-01-01T00:00:00Z", 0.0),
        ("0001-01-01T00:00:00Z", -62_135_596_800.0),
        ("2026-11-23", 1_795_392_000.0),
    ])
    func validTimestampsParse(_ text: String, _ seconds: Double) throws {
        let date = try #require(Timestamp.parse(text), "\(text)")
        #expect(abs(date.timeIntervalSince1970 - seconds) < 1e-6, "\(text)")
    }

    @Test func parsingAgreesWithFoundationWhereFoundationIsRight() throws {
        for text in [
            "2026-11-23T15:11:07.001Z", "2026-11-23T15:11:07.250Z", "2026-11-23T15:11:07.999Z",
            "2026-11-20T10:00:00.250Z", "2001-01-01T00:00:00.123Z", "2026-11-23T15:11:07+02:00",
        ] {
            let ours = try #require(Timestamp.parseDateTime(text))
            let foundation = try #require(EventCoding.parseTimestamp(text))
            #expect(ours == foundation, "\(text)")
            #expect(EventCoding.timestamp(ours) == EventCoding.timestamp(foundation), "\(text)")
        }
    }

    @Test("stored times (whole, milli- and microseconds) read as Foundation read them, from 1583 on")
    func storedTimesReadAsFoundationDid() throws {
        var generator = SystemRandomNumberGenerator()
        let first: Int64 = -12_212_553_600  // 1583-01-01T00:00:00Z
        let end: Int64 = 253_402_300_800  // 10000-01-01T00:00:00Z
        for index in 0..<20_000 {
            let seconds = Int64.random(in: first..<end, using: &generator)
            let whole = try #require(Timestamp.dateTime(secondsSince1970: seconds))
            let digits = [0, 3, 6][index % 3]
            let fraction =
                digits == 0
                ? ""
                : "."
                    + String(Int.random(in: 0..<1_000_000, using: &generator)).suffix(digits)
                    .padding(toLength: digits, withPad: "0", startingAt: 0)
            let text = whole + fraction + "Z"
            let foundation = try Date.ISO8601FormatStyle(includingFractionalSeconds: digits > 0).parse(text)
            #expect(EventCoding.parseTimestamp(text) == foundation, "\(text)")
        }
    }

    @Test("an event time read back is written back the same, every millisecond, years 1 to 9999")
    func eventTimesRoundTrip() throws {
        for base in ["0001-01-01T00:00:00", "1969-12-31T23:59:59", "2026-11-23T15:11:07", "9999-12-31T23:59:58"] {
            for millisecond in 0..<1000 {
                let digits = String(millisecond)
                let text = "\(base).\(String(repeating: "0", count: 3 - digits.count))\(digits)Z"
                let date = try #require(EventCoding.parseTimestamp(text), "\(text)")
                #expect(EventCoding.timestamp(date) == text)
                // A finer time is cut to its millisecond.
                #expect(EventCoding.timestamp(date.addingTimeInterval(0.0009)) == text)
            }
        }
    }

    @Test("times are written in the Gregorian calendar, years 1 to 9999, as Foundation does from 1582")
    func dateTimeIsGregorian() throws {
        let first: Int64 = -62_135_596_800  // 0001-01-01T00:00:00Z
        let gregorian: Int64 = -12_219_292_800  // 1582-10-15T00:00:00Z, Foundation's switch from Julian
        let end: Int64 = 253_402_300_800  // 10000-01-01T00:00:00Z
        var generator = SystemRandomNumberGenerator()
        let edges: [Int64] = [
            first, first + 86_399, gregorian - 1, gregorian, -86_401, -86_400, -1, 0, 1, 951_782_400, 4_107_456_000,
            end - 1,
        ]
        for seconds in edges + (0..<20_000).map({ _ in Int64.random(in: first..<end, using: &generator) }) {
            let text = try #require(Timestamp.dateTime(secondsSince1970: seconds), "\(seconds)")
            // Read back (the strict reader is Gregorian too) it is the same second.
            #expect(Timestamp.parseDateTime(text + "Z")?.timeIntervalSince1970 == Double(seconds), "\(text)")
            // Bounds and archive times (`format`): the whole second at or before, the same text.
            let within = Date(timeIntervalSince1970: Double(seconds) + Double.random(in: 0..<0.999, using: &generator))
            #expect(Timestamp.format(within) == text + "Z", "\(within.timeIntervalSince1970)")
            if seconds >= gregorian {
                let foundation = Date(timeIntervalSince1970: Double(seconds)).formatted(Date.ISO8601FormatStyle())
                #expect(text + "Z" == foundation, "\(seconds)")
                #expect(Timestamp.format(within) == within.formatted(Date.ISO8601FormatStyle()))
            }
        }
        #expect(Timestamp.dateTime(secondsSince1970: gregorian - 1) == "1582-10-14T23:59:59")
        #expect(Timestamp.dateTime(secondsSince1970: first) == "0001-01-01T00:00:00")
        #expect(Timestamp.dateTime(secondsSince1970: first - 1) == nil)
        #expect(Timestamp.dateTime(secondsSince1970: end) == nil)
        // An event time before 1582 reads back as PostgreSQL reads it (Foundation's own
        // formatter wrote 1500-05-22 for it, and its parser read 1500-06-01 ten days later).
        let old = try #require(Timestamp.parse("1500-06-01T12:00:00Z"))
        #expect(EventCoding.timestamp(old) == "1500-06-01T12:00:00.000Z")
        #expect(EventCoding.parseTimestamp("1500-06-01T12:00:00.000Z") == old)
    }

    @Test(arguments: [
        "2026-02-30", "2026-02-30T10:00:00Z", "2025-02-29T10:00:00Z", "1900-02-29", "2026-13-01", "2026-00-10",
        "2026-11-00", "2026-11-31", "2026-11-20T25:00:00Z", "2026-11-20T24:00:00Z", "2026-11-20T10:60:00Z",
        "2026-11-20T10:00:60Z", "2026-11-20T10:00:00+25:00", "99999-01-01T00:00:00Z", "+99999-01-01T00:00:00Z",
        "-0001-01-01T00:00:00Z", "26-11-20", "2026-1-20", "2026-11-20T", "2026-11-20T10", "2026-11-20T10:00:00.Z",
        "2026-11-20T10:00:00Zjunk", "2026-11-20x10:00:00Z", "yesterday", "", "２０２６-11-20",
    ])
    func malformedOrImpossibleTimestampsAreRefused(_ text: String) {
        #expect(Timestamp.parse(text) == nil, "\(text)")
    }

    /// Microseconds, exactly: what a cursor's `created_at` is bound back as (`vigil_ts`'s form).
    @Test func microsecondsReadAndWriteExactlyInPostgreSQLsForm() throws {
        let cases: [(String, String?)] = [
            ("2026-11-18T11:06:40.123456Z", "2026-11-18T11:06:40.123456Z"),
            ("2026-11-18T11:06:40Z", "2026-11-18T11:06:40.000000Z"),
            ("2026-12-01T00:00:00,5Z", "2026-12-01T00:00:00.500000Z"),
            ("2026-12-01T00:00:00." + String(repeating: "9", count: 200) + "Z", "2026-12-01T00:00:01.000000Z"),
            ("2026-12-01T00:00:00.0000005Z", "2026-12-01T00:00:00.000001Z"),
            ("2026-12-01T23:59:00+23:59", "2026-12-01T00:00:00.000000Z"),
            ("0000-12-31T23:59:59.9999999-00:01", "0001-01-01T00:01:00.000000Z"),
            ("1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"),
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
            ("9999-12-31T23:59:59.9999999Z", nil),
            ("0000-12-31T23:59:59Z", nil),
        ]
        for (text, expected) in cases {
            let microseconds = try #require(Timestamp.parseMicroseconds(text), "\(text)")
            #expect(Timestamp.format(microsecondsSince1970: microseconds) == expected, "\(text)")
        }
        #expect(Timestamp.parseMicroseconds("2026-02-30T00:00:00Z") == nil)
        #expect(Timestamp.parseMicroseconds("1970-01-01T00:00:00.000001Z") == 1)
        #expect(Timestamp.parseMicroseconds("1969-12-31T23:59:59.999999Z") == -1)
    }

    @Test func yearZeroParsesButIsNotRepresentable() throws {
        let zero = try #require(Timestamp.parse("0000-01-01T00:00:00Z"))
        #expect(!Timestamp.representable.contains(zero))
        #expect(Timestamp.representable.contains(try #require(Timestamp.parse("9999-12-31T23:59:59.999Z"))))
    }

    @Test func theStandardWindowIsFrom2000ToADayAhead() throws {
        let window = EventTimeWindow.standard
        let now = try #require(Timestamp.parse("2026-11-23T12:00:00Z"))
        #expect(window.violation(try #require(Timestamp.parse("2000-01-01T00:00:00Z")), now: now) == nil)
        #expect(window.violation(now.addingTimeInterval(86_400), now: now) == nil)
        #expect(window.violation(now.addingTimeInterval(-30 * 86_400), now: now) == nil)
        let early = window.violation(try #require(Timestamp.parse("1999-12-31T23:59:59Z")), now: now)
        #expect(early == .tooEarly(try #require(Timestamp.parse("2000-01-01T00:00:00Z"))))
        #expect(early?.type == "greater_than_equal")
        #expect(early?.message == "Input should be greater than or equal to 2000-01-01T00:00:00Z")
        let late = window.violation(now.addingTimeInterval(86_401), now: now)
        #expect(late == .tooLate(now.addingTimeInterval(86_400)))
        #expect(late?.message == "Input should be less than or equal to 2026-11-24T12:00:00Z")
        #expect(window.violation(try #require(Timestamp.parse("0000-01-01T00:00:00Z")), now: now) != nil)
    }

    @Test func noWindowLetsThroughWhatPostgreSQLCantHold() throws {
        let wide = EventTimeWindow(earliest: .distantPast, maximumFuture: 1e12)
        let now = Date()
        let yearZero = try #require(Timestamp.parse("0000-06-01T00:00:00Z"))
        #expect(wide.violation(yearZero, now: now) == .tooEarly(Timestamp.representable.lowerBound))
        #expect(
            wide.violation(Timestamp.representable.upperBound.addingTimeInterval(1), now: now)
                == .tooLate(Timestamp.representable.upperBound))
        #expect(wide.violation(try #require(Timestamp.parse("0001-01-01T00:00:00Z")), now: now) == nil)
    }

    @Test func theWindowIsReadFromTheEnvironment() throws {
        #expect(try EventTimeWindow.fromEnvironment([:]) == .standard)
        let custom = try EventTimeWindow.fromEnvironment([
            "VIGIL_MIN_EVENT_TIME": "2020-06-01T00:00:00Z", "VIGIL_MAX_FUTURE_SECONDS": "60",
        ])
        #expect(custom == EventTimeWindow(earliest: try #require(Timestamp.parse("2020-06-01")), maximumFuture: 60))
        #expect(throws: EventTimeWindow.ConfigurationError.self) {
            try EventTimeWindow.fromEnvironment(["VIGIL_MIN_EVENT_TIME": "0000-01-01"])
        }
        #expect(throws: EventTimeWindow.ConfigurationError.self) {
            try EventTimeWindow.fromEnvironment(["VIGIL_MAX_FUTURE_SECONDS": "-1"])
        }
        #expect(throws: EventTimeWindow.ConfigurationError.self) {
            try EventTimeWindow.fromEnvironment(["VIGIL_MAX_FUTURE_SECONDS": "a day"])
        }
    }
}
