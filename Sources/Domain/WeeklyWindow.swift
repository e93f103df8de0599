import Foundation

/// A window of the day, `[start, end)` in seconds after midnight in a time zone, on some days
/// of the week: an alert rule's schedule and a quiet-hours period are both one. A window whose
/// start is after its end runs past midnight and belongs to the day it started on (Monday
/// 22:00–06:00 holds Tuesday 03:00).
public enum WeeklyWindow {
    /// Whether `date` falls in the window; `on(day)` says whether it runs on a day (0 = Monday
    /// … 6 = Sunday).
    public static func holds(
        _ date: Date, start: Int, end: Int, zone: TimeZone, on: (_ day: Int) -> Bool
    ) -> Bool {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let parts = calendar.dateComponents([.weekday, .hour, .minute, .second], from: date)
        let second = (parts.hour ?? 0) * 3600 + (parts.minute ?? 0) * 60 + (parts.second ?? 0)
        // Calendar weekdays: 1 = Sunday.
        let today = ((parts.weekday ?? 1) + 5) % 7
        let yesterday = (today + 6) % 7
        if start < end { return start <= second && second < end && on(today) }
        return (second >= start && on(today)) || (second < end && on(yesterday))
    }
}
