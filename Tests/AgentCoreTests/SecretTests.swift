import AgentCore
import Testing

@Suite struct SecretTests {
    @Test(arguments: [
        ("s3cr3t\n", "s3cr3t"), ("s3cr3t\r\n", "s3cr3t"), ("s3cr3t", "s3cr3t"), ("s3cr3t\n\n", "s3cr3t\n"),
        ("\r\n", ""), ("", ""), ("é\r\n", "é"), ("a\r", "a\r"),
    ])
    func fromTextDropsOneLineEnding(_ text: String, _ expected: String) {
        #expect(Secret.fromText(text).revealed == expected)
    }

    @Test func printingMasksTheValue() {
        let secret = Secret.fromText("hunter2\r\n")
        #expect(!"\(secret)".contains("hunter2"))
        #expect("\(secret)" == "****** (7 characters)")
    }
}
