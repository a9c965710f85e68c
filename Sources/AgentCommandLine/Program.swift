#if canImport(Glibc)
import Glibc
#endif

/// Runs a command tree for a process: parses, prints help, the version or errors, runs the command, and turns
/// what it throws into an exit status:
///
/// - help and `--version`: standard output, 0;
/// - a command line that cannot be read, or a `ValidationError`: `Error: …`, the usage and where to read more on
///   standard error, 64 (EX_USAGE);
/// - `ExitCode(n)`: n, nothing printed;
/// - anything else: `Error: …` on standard error, 1.
public enum CommandLineProgram {
    /// The exit status for a usage error (sysexits.h EX_USAGE).
    public static let usageStatus: Int32 = 64

    /// What the program printed itself (the command prints its own results directly) and its exit status.
    public struct Outcome: Sendable, Equatable {
        public var standardOutput = ""
        public var standardError = ""
        public var status: Int32 = 0

        public init(standardOutput: String = "", standardError: String = "", status: Int32 = 0) {
            self.standardOutput = standardOutput
            self.standardError = standardError
            self.status = status
        }
    }

    /// Parses `arguments` (without the program's name) and runs the command; `width` lays out help.
    public static func execute(_ root: CommandNode, arguments: [String], width: Int = 80) async -> Outcome {
        switch CommandLineParser.parse(arguments, root: root) {
        case .failure(let failure):
            return self.usageError(failure.error, path: failure.path)
        case .success(.help(let path)):
            return Outcome(standardOutput: HelpFormatter.help(for: path, version: root.configuration.version, width: width) + "\n")
        case .success(.version(let version)):
            return Outcome(standardOutput: version + "\n")
        case .success(.run(let path, let values)):
            guard let action = path.last?.action else {
                return Outcome(standardOutput: HelpFormatter.help(for: path, version: root.configuration.version, width: width) + "\n")
            }
            do {
                try await action(values)
                return Outcome()
            } catch {
                return self.outcome(for: error, path: path)
            }
        }
    }

    /// The outcome of an error a command threw.
    public static func outcome(for error: any Error, path: [CommandNode]) -> Outcome {
        switch error {
        case let exit as ExitCode:
            return Outcome(status: exit.status)
        case let validation as ValidationError:
            return self.usageError(.validation(validation.message), path: path)
        case let failure as CommandLineFailure:
            return self.usageError(failure.error, path: failure.path)
        case let commandLine as CommandLineError:
            return self.usageError(commandLine, path: path)
        default:
            return Outcome(standardError: "Error: \(String(describing: error))\n", status: 1)
        }
    }

    static func usageError(_ error: CommandLineError, path: [CommandNode]) -> Outcome {
        var text = "Error: \(error.message)\n"
        if let help = error.helpLine { text += "Help:  \(help)\n" }
        text += HelpFormatter.usageMessage(for: path) + "\n"
        return Outcome(standardError: text, status: Self.usageStatus)
    }

    /// The process's entry: runs `root` with the process's arguments and exits with the outcome's status.
    public static func main(_ root: CommandNode) async -> Never {
        let outcome = await self.execute(root, arguments: Array(CommandLine.arguments.dropFirst()), width: self.terminalWidth())
        if !outcome.standardOutput.isEmpty { print(outcome.standardOutput, terminator: "") }
        if !outcome.standardError.isEmpty {
            fflush(nil)
            self.write(outcome.standardError, to: STDERR_FILENO)
        }
        exit(outcome.status)
    }

    /// Writes all of `text` to `descriptor`, retrying after interruptions and short writes.
    static func write(_ text: String, to descriptor: Int32) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return Glibc.write(descriptor, base + offset, buffer.count - offset)
            }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }

    /// The width help is laid out to: `COLUMNS`, else the terminal's, else 80.
    static func terminalWidth() -> Int {
        if let text = getenv("COLUMNS"), let columns = Int(String(cString: text)), columns > 0 { return columns }
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }
}
