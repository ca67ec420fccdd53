import Testing

@testable import RefinerSegment

struct DeliveryErrorDescriptionTests {
    @Test func aServerAnswerWithLineBreaksStaysOnOneLineInTheDescription() {
        let error = SegmentDeliveryError(
            code: .rejected, statusCode: 400, responseBody: "bad\nrequest\r\n\u{1B}[2J",
            underlyingDescription: "socket\nclosed", detail: "refused")
        #expect(!error.description.unicodeScalars.contains { $0.value < 0x20 })
        #expect(error.description.contains(#"bad\nrequest\r\n\u{1B}[2J"#))
        #expect(error.responseBody == "bad\nrequest\r\n\u{1B}[2J", "the field keeps the answer as it was")
    }
}
