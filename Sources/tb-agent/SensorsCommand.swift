import AgentBoard
import AgentCore
import AgentCommandLine

/// `tb-agent sensors`: read every configured sensor once.
struct SensorsCommand: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "sensors",
        abstract: "Read every configured sensor once and print its value and health.",
        discussion: """
            One line per sensor: NAME KIND VALUE HEALTH. A sensor that fails is reported and the others are \
            still read. Exits 0 when every sensor gave a reading, 69 when one or more did not, 78 when the \
            configuration is invalid. A counter shows its stored total (it counts only while the agent runs).
            """)

    static var arguments: [ArgumentSpec] { GlobalOptions.arguments }

    var global: GlobalOptions

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
    }

    func run() async throws {
        let configuration = try BoardCommand.configuration(self.global)
        guard !configuration.sensors.isEmpty else {
            CommandOutput.error("tb-agent sensors: \(self.global.config) has no [[sensors]]")
            return
        }
        let sensors = BoardSensors.make(configuration.sensors, environment: BoardSetup.sensorEnvironment(configuration, gpio: GPIOBackends.make(configuration.gpio)))
        let reports = BoardSensors.readAll(sensors)
        let nameWidth = max(4, reports.map(\.name.count).max() ?? 0)
        let values = reports.map { report -> String in
            guard let value = report.value else { return "-" }
            return report.status == .stale ? "\(value) (stale)" : "\(value)"
        }
        let valueWidth = max(5, values.map(\.count).max() ?? 0)
        func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
        BoardCommand.emit("\(pad("NAME", nameWidth))  \(pad("KIND", 7))  \(pad("VALUE", valueWidth))  HEALTH")
        for (report, value) in zip(reports, values) {
            BoardCommand.emit("\(pad(report.name, nameWidth))  \(pad(report.kind.rawValue, 7))  \(pad(value, valueWidth))  \(report.summary)")
        }
        if reports.contains(where: { $0.status != .ok }) { throw ExitCode(ExitStatus.unavailable) }
    }
}
