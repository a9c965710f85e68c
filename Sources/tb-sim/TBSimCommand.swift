import ArgumentParser
import Foundation
import TBJSON
import TBSimulator

/// `tb-sim`: a ThingsBoard device-API simulator for development, demos and tests.
@main
struct TBSimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tb-sim",
        abstract: "Simulates ThingsBoard's device-side MQTT API (provisioning, device sessions) on loopback.",
        discussion: """
            Profiles and pre-provisioned devices come from the TOML file (--config) or the control interface.
            Flags override the file. When ready, tb-sim prints one JSON line with the bound ports on stdout and \
            writes the same JSON to --ready-file.
            """
    )

    @Option(name: .long, help: ArgumentHelp("TOML configuration file.", valueName: "FILE"))
    var config: String?

    @Option(name: .long, help: "Listen address for MQTT and the control interface (default 127.0.0.1).")
    var host: String?

    @Option(name: .long, help: "MQTT port; 0 picks a free one (default 1883).")
    var port: Int?

    @Option(name: .customLong("control-port"), help: "Control interface port; 0 picks a free one (default 0).")
    var controlPort: Int?

    @Option(name: .customLong("mqtts-port"), help: "MQTT over TLS port, where X.509 certificate chains provision devices; 0 picks a free one (default: off).")
    var mqttsPort: Int?

    @Option(name: .customLong("tls-cert-file"), help: ArgumentHelp("The TLS listener's certificate (PEM).", valueName: "FILE"))
    var tlsCertFile: String?

    @Option(name: .customLong("tls-key-file"), help: ArgumentHelp("The TLS listener's private key (PEM, unencrypted).", valueName: "FILE"))
    var tlsKeyFile: String?

    @Flag(name: .customLong("no-control"), help: "Run without the control interface.")
    var noControl = false

    @Option(name: .customLong("ready-file"), help: ArgumentHelp("Write {\"mqttPort\":..,\"controlPort\":..} here once listening.", valueName: "FILE"))
    var readyFile: String?

    @Option(name: .long, help: ArgumentHelp("Device registry file, kept across restarts.", valueName: "FILE"))
    var registry: String?

    @Option(name: .customLong("event-log"), help: ArgumentHelp("JSON-lines event log; - for stdout.", valueName: "FILE"))
    var eventLog: String?

    @Option(name: .customLong("max-packet-size"), help: "Largest MQTT packet accepted, in bytes (default 65536).")
    var maxPacketSize: Int?

    @Option(name: .customLong("provision-close-delay"), help: "Close provision sessions this long after the response (default 60s).")
    var provisionCloseDelay: String?

    @Option(name: .customLong("client-rpc-timeout"), help: "Answer unanswered client-side RPCs with {\"error\":\"timeout\"} after this (default 60s).")
    var clientRPCTimeout: String?

    @Option(name: .customLong("inactivity-timeout"), help: "Close sessions with no packets for this long (default 600s).")
    var inactivityTimeout: String?

    @Option(name: .customLong("rpc-delivery-timeout"), help: "Mark a QoS 1 server-side RPC timed out without PUBACK after this (default 10s).")
    var rpcDeliveryTimeout: String?

    @Option(name: .customLong("rpc-timeout"), help: "Default wait for a device's reply to a server-side RPC (default 10s).")
    var rpcTimeout: String?

    @Option(name: .customLong("rate-limit-messages"), help: ArgumentHelp("Per-device message limit, e.g. 20:1,600:60 (default none).", valueName: "LIMIT"))
    var rateLimitMessages: String?

    @Option(name: .customLong("rate-limit-telemetry"), help: ArgumentHelp("Per-device telemetry message limit (default none).", valueName: "LIMIT"))
    var rateLimitTelemetry: String?

    @Option(name: .customLong("rate-limit-data-points"), help: ArgumentHelp("Per-device telemetry data point limit (default none).", valueName: "LIMIT"))
    var rateLimitDataPoints: String?

    func run() async throws {
        let configuration: SimulatorConfiguration
        do {
            configuration = try self.makeConfiguration()
        } catch {
            FileHandle.standardError.write(Data("tb-sim: \(error.description)\n".utf8))
            throw ExitCode(78)
        }
        let simulator: Simulator
        do {
            simulator = try await Simulator.start(configuration)
        } catch let error as SimulatorError {
            FileHandle.standardError.write(Data("tb-sim: \(error.description)\n".utf8))
            throw ExitCode(78)
        } catch {
            FileHandle.standardError.write(Data("tb-sim: cannot listen on \(configuration.host):\(configuration.mqttPort): \(error)\n".utf8))
            throw ExitCode(1)
        }
        let ready = JSONValue.object([
            ("ready", .bool(true)),
            ("host", .string(configuration.host)),
            ("mqttPort", .integer(Int64(simulator.mqttPort))),
            ("controlPort", simulator.controlPort.map { .integer(Int64($0)) } ?? .null),
            ("mqttsPort", simulator.mqttsPort.map { .integer(Int64($0)) } ?? .null),
            ("pid", .integer(Int64(ProcessInfo.processInfo.processIdentifier))),
        ]).serialized
        print(ready)
        fflush(nil)
        if let readyFile {
            do {
                let temporary = readyFile + ".tmp"
                try Data((ready + "\n").utf8).write(to: URL(fileURLWithPath: temporary))
                _ = rename(temporary, readyFile)
            } catch {
                FileHandle.standardError.write(Data("tb-sim: cannot write ready file \(readyFile): \(error)\n".utf8))
                await simulator.stop()
                throw ExitCode(1)
            }
        }
        // SIGTERM and SIGINT stop the listeners and close sessions cleanly (the event log gets "stopped").
        let signals = [SIGTERM, SIGINT].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { Task { await simulator.stop() } }
            source.resume()
            return source
        }
        await simulator.waitUntilClosed()
        signals.forEach { $0.cancel() }
    }

    func makeConfiguration() throws(SimulatorError) -> SimulatorConfiguration {
        var configuration = SimulatorConfiguration()
        configuration.controlPort = 0
        if let config {
            let text: String
            do {
                text = try String(contentsOfFile: config, encoding: .utf8)
            } catch {
                throw SimulatorError("cannot read configuration file \(config): \(error.localizedDescription)")
            }
            try SimConfigFile.parse(text, path: config, into: &configuration)
        }
        if let host { configuration.host = host }
        if let port {
            guard (0...65535).contains(port) else { throw SimulatorError("--port must be between 0 and 65535") }
            configuration.mqttPort = port
        }
        if let controlPort {
            guard (0...65535).contains(controlPort) else { throw SimulatorError("--control-port must be between 0 and 65535") }
            configuration.controlPort = controlPort
        }
        if let mqttsPort {
            guard (0...65535).contains(mqttsPort) else { throw SimulatorError("--mqtts-port must be between 0 and 65535") }
            configuration.mqttsPort = mqttsPort
        }
        if let tlsCertFile { configuration.tlsCertificateFile = tlsCertFile }
        if let tlsKeyFile { configuration.tlsKeyFile = tlsKeyFile }
        if configuration.mqttsPort != nil && (configuration.tlsCertificateFile == nil || configuration.tlsKeyFile == nil) {
            throw SimulatorError("the TLS listener (--mqtts-port, [server] mqtts_port) needs the server certificate and key: --tls-cert-file and --tls-key-file ([server] tls_cert_file, tls_key_file)")
        }
        if self.noControl { configuration.controlPort = nil }
        if let registry { configuration.registryPath = registry }
        if let eventLog { configuration.eventLogPath = eventLog }
        if let maxPacketSize {
            guard maxPacketSize > 0 && maxPacketSize <= 268_435_455 else {
                throw SimulatorError("--max-packet-size must be between 1 and 268435455")
            }
            configuration.maxPacketSize = maxPacketSize
        }
        func duration(_ text: String?, _ flag: String) throws(SimulatorError) -> Duration? {
            guard let text else { return nil }
            guard let d = parseDuration(text) else {
                throw SimulatorError("--\(flag) \"\(text)\" is not a duration: use seconds or text such as 500ms, 60s, 10m")
            }
            return d
        }
        if let d = try duration(self.provisionCloseDelay, "provision-close-delay") { configuration.timings.provisionCloseDelay = d }
        if let d = try duration(self.clientRPCTimeout, "client-rpc-timeout") { configuration.timings.clientRPCTimeout = d }
        if let d = try duration(self.inactivityTimeout, "inactivity-timeout") { configuration.timings.inactivityTimeout = d }
        if let d = try duration(self.rpcDeliveryTimeout, "rpc-delivery-timeout") { configuration.timings.rpcDeliveryTimeout = d }
        if let d = try duration(self.rpcTimeout, "rpc-timeout") { configuration.timings.serverRPCTimeout = d }
        if let text = self.rateLimitMessages { configuration.rateLimits.messages = try RateLimit(text) }
        if let text = self.rateLimitTelemetry { configuration.rateLimits.telemetryMessages = try RateLimit(text) }
        if let text = self.rateLimitDataPoints { configuration.rateLimits.telemetryDataPoints = try RateLimit(text) }
        return configuration
    }
}
