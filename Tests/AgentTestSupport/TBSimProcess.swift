import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The built `tb-sim` on 127.0.0.1 at free ports, configured from a TOML text, started and stopped by PID.
///
/// ```swift
/// let sim = try TBSimProcess(config: """
///     [[profiles]]
///     name = "sensors"
///     provision_key = "k"
///     provision_secret = "s"
///     """, arguments: ["--provision-close-delay", "2s"])
/// defer { sim.stop() }
/// // sim.mqttPort, sim.controlPort, sim.eventLines(), try sim.control("POST", "/devices/NAME/revoke")
/// ```
/// `[server]` ports are forced to 0 (free ports) through the command line, whatever the text says.
public final class TBSimProcess: @unchecked Sendable {
    public let mqttPort: Int
    public let controlPort: Int
    /// The MQTT-over-TLS port, when started with `--mqtts-port` (`ChainPKI.simArguments`).
    public let mqttsPort: Int?
    public let child: ChildProcess
    public let directory: URL
    public let eventLogURL: URL
    public let registryURL: URL

    public init(config: String, arguments: [String] = []) throws {
        self.directory = try TestSupport.makeTemporaryDirectory("tb-sim")
        let configURL = self.directory.appendingPathComponent("tb-sim.toml")
        try config.write(to: configURL, atomically: true, encoding: .utf8)
        let ready = self.directory.appendingPathComponent("ready.json")
        self.eventLogURL = self.directory.appendingPathComponent("events.jsonl")
        self.registryURL = self.directory.appendingPathComponent("registry.json")
        let child = try ChildProcess(TestSupport.binary("tb-sim"), [
            "--config", configURL.path, "--port", "0", "--control-port", "0", "--ready-file", ready.path,
            "--event-log", self.eventLogURL.path, "--registry", self.registryURL.path,
        ] + arguments)
        guard TestSupport.waitUntil(timeout: .seconds(20), { FileManager.default.fileExists(atPath: ready.path) || !child.isRunning }),
              child.isRunning
        else {
            child.stop()
            throw TestSupportError("tb-sim did not start: \(child.stderr)")
        }
        let text = (try? String(contentsOf: ready, encoding: .utf8)) ?? ""
        func number(_ key: String) -> Int? {
            guard let range = text.range(of: "\"\(key)\":") else { return nil }
            return Int(text[range.upperBound...].prefix { $0.isNumber })
        }
        guard let mqtt = number("mqttPort"), let control = number("controlPort") else {
            child.stop()
            throw TestSupportError("tb-sim's ready file is not understood: \(text)")
        }
        self.mqttPort = mqtt
        self.controlPort = control
        self.mqttsPort = number("mqttsPort")
        self.child = child
    }

    /// The event log's lines (one JSON object each).
    public func eventLines() -> [String] {
        ((try? String(contentsOf: self.eventLogURL, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Event lines containing every one of `fragments` (e.g. `"\"event\":\"telemetry\""`, `"\"device\":\"board-1\""`).
    public func events(containing fragments: String...) -> [String] {
        self.eventLines().filter { line in fragments.allSatisfy { line.contains($0) } }
    }

    /// One request to the control interface; returns the HTTP status and the JSON body text.
    public func control(_ method: String, _ path: String, _ body: String = "") throws -> (status: Int, body: String) {
        try TestSupport.httpRequest(port: self.controlPort, method, path, body)
    }

    public func stop() { self.child.stop() }
    deinit { self.child.stop() }
}
