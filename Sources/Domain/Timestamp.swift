import Foundation

/// Strict ISO 8601 (RFC 3339 profile) reading of the timestamps clients send.
///
/// Foundation's parser is lenient: `2026-02-30` becomes March 2 and `T25:00` the next day.
/// Here every field is checked against the calendar (leap years included), years have four
/// digits, and the result is a `Date` only if the text names exactly one instant.
public enum Timestamp {
    /// What PostgreSQL's text input and the read models can hold: years 0001 through 9999.
    /// (Year 0000 is written by Foundation but refused by PostgreSQL: `date/time field value
    /// out of range`.)
    public static let representable: Range<Date> =
        Date(timeIntervalSince1970: -62_135_596_800)..<Date(timeIntervalSince1970: 253_402_300_800)

    /// `YYYY-MM-DDThh:mm[:ss[.fraction]]` with `Z`, `±hh:mm`, `±hhmm` or no zone (UTC);
    /// `t`, `z` and a space for `T` are accepted too.
    public static func parseDateTime(_ text: String) -> Date? {
        guard let (seconds, nanoseconds) = scan(text) else { return nil }
        // From the reference date, so the fraction is rounded once (as Foundation's parser does).
        return Date(timeIntervalSinceReferenceDate: Double(seconds - 978_307_200) + Double(nanoseconds) / 1e9)
    }

    /// What ``parseDateTime(_:)`` reads, as whole microseconds since 1970 (the fraction rounded
    /// to the microsecond, as PostgreSQL rounds it): exact where a `Date` is not.
    public static func parseMicroseconds(_ text: String) -> Int64? {
        guard let (seconds, nanoseconds) = scan(text) else { return nil }
        return Int64(seconds) * 1_000_000 + Int64((nanoseconds + 500) / 1000)
    }

    /// A date-time's whole seconds since 1970 and its nanoseconds past them.
    private static func scan(_ text: String) -> (seconds: Int, nanoseconds: Int)? {
        var scanner = Scanner(Array(text.utf8))
        guard let day = scanner.day(), let separator = scanner.next(), [0x54, 0x74, 0x20].contains(separator),
            let time = scanner.timeOfDay(), let offset = scanner.zone(), scanner.isAtEnd
        else { return nil }
        return (day * 86_400 + time.whole - offset, time.nanoseconds)
    }

    /// `2026-11-23T15:11:07.123456Z` for microseconds since 1970: the API's timestamps as
    /// PostgreSQL renders them (`vigil_ts`), so text of this form reads back as the same
    /// `timestamptz`. Nil outside years 0001 through 9999.
    public static func format(microsecondsSince1970 microseconds: Int64) -> String? {
        let (seconds, fraction) = microseconds.quotientAndRemainder(dividingBy: 1_000_000)
        let (whole, micro) = fraction < 0 ? (seconds - 1, fraction + 1_000_000) : (seconds, fraction)
        guard let text = dateTime(secondsSince1970: whole) else { return nil }
        let digits = String(micro)
        return text + "." + String(repeating: "0", count: 6 - digits.count) + digits + "Z"
    }

    /// `YYYY-MM-DD`: the day's midnight, UTC.
    public static func parseDay(_ text: String) -> Date? {
        var scanner = Scanner(Array(text.utf8))
        guard let day = scanner.day(), scanner.isAtEnd else { return nil }
        return Date(timeIntervalSince1970: Double(day * 86_400))
    }

    /// A date-time, or a day (its midnight, UTC).
    public static func parse(_ text: String) -> Date? {
        text.utf8.count == 10 ? parseDay(text) : parseDateTime(text)
    }

    /// `2026-11-23T15:11:07Z`, the way bounds are shown in error messages and archives name
    /// times: the whole second at or before `date`, in ``dateTime(secondsSince1970:)``'s calendar
    /// (Foundation's format only outside years 1–9999).
    public static func format(_ date: Date) -> String {
        if let seconds = Int64(exactly: date.timeIntervalSince1970.rounded(.down)),
            let text = dateTime(secondsSince1970: seconds)
        {
            return text + "Z"
        }
        return date.formatted(Date.ISO8601FormatStyle())
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var isAtEnd: Bool { index == bytes.count }

        mutating func next() -> UInt8? {
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return bytes[index]
        }

        mutating func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

        /// Exactly `count` ASCII digits.
        mutating func digits(_ count: Int) -> Int? {
            var value = 0
            for _ in 0..<count {
                guard let byte = next(), (0x30...0x39).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }

        mutating func expect(_ byte: UInt8) -> Bool {
            guard peek() == byte else { return false }
            index += 1
            return true
        }

        /// `YYYY-MM-DD` as days since 1970-01-01.
        mutating func day() -> Int? {
            guard let year = digits(4), expect(0x2d), let month = digits(2), expect(0x2d), let day = digits(2),
                (1...12).contains(month), (1...Timestamp.daysIn(month, of: year)).contains(day)
            else { return nil }
            return Timestamp.daysSinceEpoch(year: year, month: month, day: day)
        }

        /// `hh:mm[:ss[.fraction]]` as seconds into the day.
        mutating func timeOfDay() -> (whole: Int, nanoseconds: Int)? {
            guard let hour = digits(2), expect(0x3a), let minute = digits(2), hour < 24, minute < 60 else { return nil }
            var second = 0
            var nanos = 0
            if expect(0x3a) {
                guard let value = digits(2), value < 60 else { return nil }
                second = value
                if expect(0x2e) || expect(0x2c) {
                    // Up to nanoseconds count; more digits are allowed and ignored.
                    var count = 0
                    while let byte = peek(), (0x30...0x39).contains(byte) {
                        index += 1
                        if count < 9 { nanos = nanos * 10 + Int(byte - 0x30) }
                        count += 1
                    }
                    guard count > 0 else { return nil }
                    for _ in min(count, 9)..<9 { nanos *= 10 }
                }
            }
            return (hour * 3600 + minute * 60 + second, nanos)
        }

        /// `Z`, `±hh:mm`, `±hhmm`, or nothing (UTC), as seconds east of UTC.
        mutating func zone() -> Int? {
            guard let byte = peek() else { return 0 }
            if byte == 0x5a || byte == 0x7a {
                index += 1
                return 0
            }
            guard byte == 0x2b || byte == 0x2d else { return nil }
            index += 1
            guard let hours = digits(2), hours < 24 else { return nil }
            _ = expect(0x3a)
            guard let minutes = digits(2), minutes < 60 else { return nil }
            let offset = hours * 3600 + minutes * 60
            return byte == 0x2b ? offset : -offset
        }
    }

    static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysIn(_ month: Int, of year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Howard Hinnant's `days_from_civil` (proleptic Gregorian).
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// Howard Hinnant's `civil_from_days`: the inverse of ``daysSinceEpoch(year:month:day:)``.
    static func civil(daysSinceEpoch days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shifted = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shifted + 2) / 5 + 1
        let month = shifted < 10 ? shifted + 3 : shifted - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// `2026-11-23T15:11:07` for whole seconds since 1970, UTC, in the proleptic Gregorian
    /// calendar (PostgreSQL's, and ``parseDateTime(_:)``'s), years 0001 through 9999; nil outside
    /// them. From 15 October 1582 on, as Foundation's `ISO8601FormatStyle` writes it (without the
    /// zone); before, Foundation's calendar is Julian. Written by hand: Foundation's formatter
    /// cost a detection's POST more than its JSON.
    public static func dateTime(secondsSince1970 seconds: Int64) -> String? {
        let (days, second) = Int(seconds).quotientAndRemainder(dividingBy: 86_400)
        let (day, secondOfDay) = second < 0 ? (days - 1, second + 86_400) : (days, second)
        let date = civil(daysSinceEpoch: day)
        guard (1...9999).contains(date.year) else { return nil }
        return String(unsafeUninitializedCapacity: 19) { bytes in
            var index = 0
            /// `value`'s last `width` digits, then `separator`.
            func put(_ value: Int, _ width: Int, _ separator: UInt8? = nil) {
                var rest = value
                for position in stride(from: index + width - 1, through: index, by: -1) {
                    bytes[position] = UInt8(ascii: "0") + UInt8(rest % 10)
                    rest /= 10
                }
                index += width
                if let separator {
                    bytes[index] = separator
                    index += 1
                }
            }
            put(date.year, 4, UInt8(ascii: "-"))
            put(date.month, 2, UInt8(ascii: "-"))
            put(date.day, 2, UInt8(ascii: "T"))
            put(secondOfDay / 3600, 2, UInt8(ascii: ":"))
            put(secondOfDay / 60 % 60, 2, UInt8(ascii: ":"))
            put(secondOfDay % 60, 2)
            return index
        }
    }
}

/// When a recorded fact may say it happened: the one rule for every client-supplied timestamp
/// that ends up in an event (a detection's `detected_at`, …).
///
/// A time outside what PostgreSQL and the read models can hold would poison the log (every
/// projection fails on it, forever); a time far outside the plausible window is a broken
/// clock or a typo, and one dated years ahead would swallow later detections into its batch.
public struct EventTimeWindow: Sendable, Equatable {
    /// The earliest accepted time (`VIGIL_MIN_EVENT_TIME`).
    public var earliest: Date
    /// How far past the server's clock a time may be, in seconds (`VIGIL_MAX_FUTURE_SECONDS`).
    public var maximumFuture: TimeInterval

    /// Not before 2000-01-01T00:00:00Z, not more than a day ahead.
    public static let standard = EventTimeWindow(
        earliest: Date(timeIntervalSince1970: 946_684_800), maximumFuture: 86_400)

    public init(earliest: Date, maximumFuture: TimeInterval) {
        self.earliest = earliest
        self.maximumFuture = maximumFuture
    }

    /// Why `date` is refused, or nil. Whatever the configuration, a time PostgreSQL can't hold
    /// is refused.
    public func violation(_ date: Date, now: Date) -> Violation? {
        let lower = max(earliest, Timestamp.representable.lowerBound)
        if date < lower { return .tooEarly(lower) }
        let upper = min(now.addingTimeInterval(max(maximumFuture, 0)), Timestamp.representable.upperBound)
        if date > upper { return .tooLate(upper) }
        return nil
    }

    public enum Violation: Sendable, Equatable {
        case tooEarly(Date)
        case tooLate(Date)

        /// pydantic's wording and type for a bound.
        public var message: String {
            switch self {
            case .tooEarly(let bound): "Input should be greater than or equal to \(Timestamp.format(bound))"
            case .tooLate(let bound): "Input should be less than or equal to \(Timestamp.format(bound))"
            }
        }

        public var type: String {
            switch self {
            case .tooEarly: "greater_than_equal"
            case .tooLate: "less_than_equal"
            }
        }
    }

    /// Reads the window from `VIGIL_MIN_EVENT_TIME` (ISO 8601) and `VIGIL_MAX_FUTURE_SECONDS`;
    /// an unset variable keeps the default, a malformed one is an error naming it.
    public static func fromEnvironment(_ environment: [String: String]) throws -> EventTimeWindow {
        var window = EventTimeWindow.standard
        if let text = environment["VIGIL_MIN_EVENT_TIME"], !text.isEmpty {
            guard let date = Timestamp.parse(text), Timestamp.representable.contains(date) else {
                throw ConfigurationError("VIGIL_MIN_EVENT_TIME must be an ISO 8601 time in years 0001-9999: \(text)")
            }
            window.earliest = date
        }
        if let text = environment["VIGIL_MAX_FUTURE_SECONDS"], !text.isEmpty {
            guard let seconds = Int(text), seconds >= 0 else {
                throw ConfigurationError("VIGIL_MAX_FUTURE_SECONDS must be a whole number of seconds ≥ 0: \(text)")
            }
            window.maximumFuture = TimeInterval(seconds)
        }
        return window
    }

    public struct ConfigurationError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
