import Domain
import Foundation
import Testing

@testable import API

/// ``StrictJSON``, the reader every JSON body goes through, on its own: what it refuses and
/// what it reads as Foundation does.
@Suite struct StrictJSONTests {
    @Test(arguments: [
        #"{"a": [1, 2,]}"#, #"{"a": 1,}"#, "[1 2]", #"{"a": 01}"#, #"{"a": .5}"#, #"{"a": "\x"}"#,
        #"{"a": "unterminated}"#, #"{"a": NaN}"#, "{'a': 1}", #"{"a": 1} // comment"#, #"{"a": 1} {"b": 2}"#, "",
        String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
    ])
    func syntaxErrorsAreRefused(_ text: String) {
        #expect(throws: StrictJSON.Failure.self) { try StrictJSON.parse(Array(text.utf8)) }
        do {
            _ = try StrictJSON.parse(Array(text.utf8))
        } catch {
            #expect(error.type == "json_invalid", "\(text)")
            #expect(error.location.count == 1 && Int(error.location[0]) != nil, "\(text)")
        }
    }

    @Test func wellFormedJSONReadsAsFoundationReadsIt() throws {
        let text = #"""
            {"s": "a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00", "n": [0, -1, 2.5, 1e3, -0.25E-2, 9007199254740991, -9007199254740991, 1e20],
             "t": true,
             "f": false, "z": null, "o": {"nested": [[], {}]}, "deep": [[[["x"]]]]}
            """#
        let strict = try StrictJSON.parse(Array(text.utf8))
        let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(strict == foundation)
        let deep = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect(throws: Never.self) { try StrictJSON.parse(Array(deep.utf8)) }
    }
}
