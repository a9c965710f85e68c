import AgentCommandLine
import TBJSON
import TBTOML

#if canImport(Glibc)
import Glibc
#endif

/// `tb-agent toml-decode`: the decoder interface of toml-test (https://github.com/toml-lang/toml-test), so that the
/// agent's TOML reader can be checked from outside: TOML on standard input, toml-test's tagged JSON on standard
/// output and exit 0; for invalid TOML, the positioned error on standard error and exit 1.
struct TOMLDecode: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "toml-decode",
        abstract: "Read TOML on standard input and write it as toml-test's tagged JSON.",
        discussion: """
            Exits 0 with the JSON on standard output; for invalid TOML, exits 1 with \
            stdin:LINE:COLUMN: key.path: what is wrong on standard error.
            """,
        shouldDisplay: false)

    init(_ values: ParsedValues) {}

    func run() throws {
        guard let input = Self.readStandardInput(limit: TOMLParser.defaultMaxBytes + 1) else {
            Self.writeError("stdin: cannot read standard input")
            throw ExitCode(1)
        }
        do {
            let root = try TOMLParser.parse(bytes: input)
            print(TOMLTaggedJSON.encode(root).serialized)
        } catch {
            let key = TOMLPathComponent.render(error.keyPath)
            Self.writeError("stdin:\(error.position): " + (key.isEmpty ? "" : key + ": ") + error.message)
            throw ExitCode(1)
        }
    }

    /// Everything on standard input, or its first `limit` bytes; nil on a read error.
    static func readStandardInput(limit: Int) -> [UInt8]? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count < limit {
            let count = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { break }
            bytes += buffer[0..<count]
        }
        return bytes
    }

    static func writeError(_ text: String) {
        let line = Array((text + "\n").utf8)
        var offset = 0
        while offset < line.count {
            let written = line.withUnsafeBytes { bytes -> Int in
                guard let base = bytes.baseAddress else { return 0 }
                return write(2, base + offset, bytes.count - offset)
            }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }
}
