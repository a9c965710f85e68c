import AgentCommandLine
import AgentCore
import Logging

/// Options every subcommand takes.
struct GlobalOptions {
    static let config = Option<String>("config", help: "The configuration file.", default: AgentConfiguration.defaultPath)
    static let logLevel = Option<Logger.Level>(
        "log-level", help: "Log level: trace, debug, info, notice, warning, error, critical.", default: .info)

    static var arguments: [ArgumentSpec] { [Self.config.spec, Self.logLevel.spec] }

    var config: String
    var logLevel: Logger.Level

    init(_ values: ParsedValues) throws {
        self.config = try values.value(Self.config)
        self.logLevel = try values.value(Self.logLevel)
    }
}

extension Logger.Level: CommandLineValue {
    /// Any case (`DEBUG`), as `Logger.Level(_:)` reads it.
    public init?(commandLineValue text: String) {
        self.init(text)
    }
}

/// Exit statuses from sysexits.h, so that scripts can tell the classes apart.
enum ExitStatus {
    static let usage: Int32 = 64
    static let unavailable: Int32 = 69
    static let software: Int32 = 70
    static let ioError: Int32 = 74
    static let tempFail: Int32 = 75
    static let noPermission: Int32 = 77
    static let config: Int32 = 78
}
