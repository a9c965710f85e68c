import AgentCore
import AgentService
import Logging
import TBJSON

/// The board as `run` drives it (filled in when the board I/O lands).
enum BoardSetupForRun {
    static func make(_ config: AgentConfiguration, configurationFile: String, logger: Logger) throws -> (any BoardIO)? { nil }
    static var versionAttributes: [(String, JSONValue)] { [] }
}
