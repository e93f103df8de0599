import Domain
import NIOCore
import Testing

@testable import API

/// The fingerprint an `Idempotency-Key` retry is compared by: the same input however a client
/// spelled it, and any change of value a different one.
@Suite struct RequestDigestTests {
    static func digest(_ json: String) throws -> String { try JSONBody.parse(Array(json.utf8)).digest }

    @Test func theSameInputSpelledDifferentlyHasOneDigest() throws {
        let reference = try Self.digest(#"{"a":1,"b":{"x":"é/","y":[1,2.5,null,true]},"c":-0.25}"#)
        #expect(reference.hasPrefix("c1:"))
        #expect(reference.count == 3 + 64)
        for spelling in [
            #"{ "c" : -0.25 , "b" : { "y" : [ 1.0, 25e-1, null, true ], "x" : "\u00e9\/" }, "a" : 1e0 }"#,
            "{\"b\":{\"x\":\"\u{e9}/\",\"y\":[1,2.50,null,true]},\n\t\"a\":1.000,\"c\":-2.5E-1}",
        ] {
            #expect(try Self.digest(spelling) == reference, "\(spelling)")
        }
    }

    @Test func anyOtherValueHasAnotherDigest() throws {
        let reference = try Self.digest(#"{"a":1,"b":{"x":"é/","y":[1,2.5,null,true]},"c":-0.25}"#)
        for changed in [
            #"{"a":2,"b":{"x":"é/","y":[1,2.5,null,true]},"c":-0.25}"#,
            #"{"a":"1","b":{"x":"é/","y":[1,2.5,null,true]},"c":-0.25}"#,
            #"{"a":1,"b":{"x":"e/","y":[1,2.5,null,true]},"c":-0.25}"#,
            #"{"a":1,"b":{"x":"é/","y":[2.5,1,null,true]},"c":-0.25}"#,
            #"{"a":1,"b":{"x":"é/","y":[1,2.5,false,true]},"c":-0.25}"#,
            #"{"a":1,"b":{"x":"é/","y":[1,2.5,null,true]},"c":-0.25,"d":null}"#,
            #"{"a":1,"b":{"x":"é/","y":[1,2.5,null,true]},"C":-0.25}"#,
            #"{"a":1,"b":{"x":"é/","y":[1,2.5,null,true]},"c":-0.250000001}"#,
        ] {
            #expect(try Self.digest(changed) != reference, "\(changed)")
        }
    }

    @Test func theCanonicalFormIsSortedCompactJSON() throws {
        var buffer = ByteBuffer()
        let value = try StrictJSON.parse(Array(#"{"é":1,"b":[1.5,-3,"q\"\n"],"a":{"z":null,"B":true}}"#.utf8))
        JSONBody.canonical(value, to: &buffer)
        #expect(String(buffer: buffer) == #"{"a":{"B":true,"z":null},"b":[1.5,-3,"q\"\n"],"é":1}"#)
    }

    @Test func stringsAreEscapedAsJSONNeeds() throws {
        let cases: [(String, String)] = [
            ("", #""""#), ("plain", #""plain""#), ("é/☃ 👀", #""é/☃ 👀""#),
            ("a\"b\\c", #""a\"b\\c""#), ("\n\r\t", #""\n\r\t""#),
            ("\u{0}x\u{1f}", #""\u0000x\u001f""#), ("\"", #""\"""#), ("end\\", #""end\\""#),
        ]
        for (value, json) in cases {
            #expect(JSONWriter.quoted(value) == json, "\(value)")
            // And JSON reads it back as the same string (client JSON may hold no NUL).
            guard !value.contains("\u{0}") else { continue }
            #expect(try StrictJSON.parse(Array(json.utf8)) == .string(value), "\(json)")
        }
    }
}
