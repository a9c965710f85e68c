/// What a command is called and what help says about it.
public struct CommandConfiguration: Sendable {
    public var commandName: String
    public var abstract: String
    public var discussion: String
    /// Printed by `--version` (only the root's counts); nil: no `--version`.
    public var version: String?
    /// False hides the command from its parent's list of subcommands; it still runs and has help.
    public var shouldDisplay: Bool
    public var subcommands: [CommandNode]

    public init(
        commandName: String, abstract: String = "", discussion: String = "", version: String? = nil,
        shouldDisplay: Bool = true, subcommands: [CommandNode] = []
    ) {
        self.commandName = commandName
        self.abstract = abstract
        self.discussion = discussion
        self.version = version
        self.shouldDisplay = shouldDisplay
        self.subcommands = subcommands
    }
}

/// A command the parser can reach: its configuration, its arguments, and what runs it.
public struct CommandNode: Sendable {
    /// Builds the command from its parsed values, validates it and runs it.
    public typealias Action = @Sendable (ParsedValues) async throws -> Void

    public var configuration: CommandConfiguration
    public var arguments: [ArgumentSpec]
    /// Nil for a command that only groups subcommands: without one, it prints its help.
    public var action: Action?
    /// Whether help lists `-h, --help` (the built-in `help` command's own help does not).
    var listsHelpFlag = true

    public init(_ configuration: CommandConfiguration, arguments: [ArgumentSpec] = [], action: Action? = nil) {
        self.configuration = configuration
        self.arguments = arguments
        self.action = action
    }

    public var name: String { self.configuration.commandName }

    func subcommand(named name: String) -> CommandNode? {
        self.configuration.subcommands.first { $0.name == name }
    }
}

/// A command with arguments: it declares them, is built from what was parsed, checks them, and runs.
public protocol AsyncCommand: Sendable {
    static var configuration: CommandConfiguration { get }
    /// The options, flags and positional arguments, in the order help and usage list them.
    static var arguments: [ArgumentSpec] { get }

    /// Reads the parsed values (already checked against their types).
    init(_ values: ParsedValues) throws

    /// Checks the values together; a `ValidationError` is reported with the usage and exit status 64.
    func validate() throws

    func run() async throws
}

extension AsyncCommand {
    public static var arguments: [ArgumentSpec] { [] }

    public func validate() throws {}

    /// The command as the parser sees it.
    public static var node: CommandNode {
        CommandNode(Self.configuration, arguments: Self.arguments) { values in
            let command = try Self(values)
            try command.validate()
            try await command.run()
        }
    }
}

/// Thrown by a command: the process exits with `status` and prints nothing more (the command said what it had
/// to say).
public struct ExitCode: Error, Sendable, Equatable {
    public let status: Int32

    public init(_ status: Int32) {
        self.status = status
    }

    public static let success = ExitCode(0)
    public static let failure = ExitCode(1)
}

/// Thrown by a command whose arguments do not fit together: the message is printed with the usage, and the
/// process exits 64 (EX_USAGE).
public struct ValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { self.message }
}
