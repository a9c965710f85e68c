import AgentBoard
import AgentCommandLine
import AgentConfig
import AgentCore
import AgentHost
import AgentPlatform
import AgentGPIO
import AgentSimulated
import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// Where the board commands (`gpio`, `led`, `button`) find their lines when no configuration says it.
struct BackendOptions {
    enum BackendName: String, CommandLineValue, CaseIterable {
        case libgpiod, simulated
    }

    static let backend = Option<BackendName>(
        "backend",
        help: "GPIO backend: libgpiod (the kernel's GPIO chips) or simulated (one file per line). Default: the configuration's [gpio], else libgpiod.")
    static let simulatedDir = Option<String>(
        "simulated-dir", help: "The simulated board's folder (one file per line, holding 0 or 1); implies --backend simulated.")
    static let chip = Option<String>(
        "chip",
        help: "Address lines by offset on this chip (its label, like pinctrl-rp1 or pinctrl-bcm2711, or its path) instead of by name. Not by chip number: numbers change between kernels.")

    static var arguments: [ArgumentSpec] { [Self.backend.spec, Self.simulatedDir.spec, Self.chip.spec] }

    var backend: BackendName?
    var simulatedDir: String?
    var chip: String?

    /// Reads and checks the options (a `ValidationError` when they contradict each other).
    init(_ values: ParsedValues) throws {
        self.backend = values[Self.backend]
        self.simulatedDir = values[Self.simulatedDir]
        self.chip = values[Self.chip]
        try self.validate()
    }

    func validate() throws {
        if self.backend == .simulated && self.simulatedDir == nil {
            throw ValidationError("--backend simulated needs --simulated-dir DIR")
        }
        if self.backend == .libgpiod && self.simulatedDir != nil {
            throw ValidationError("--simulated-dir applies only to --backend simulated")
        }
    }

    /// The backend the options name, or nil to use the configuration's.
    var explicitBackend: GPIOSettings.Backend? {
        if let dir = self.simulatedDir { return .simulated(directory: dir) }
        if self.backend == .libgpiod { return .libgpiod }
        return nil
    }

    /// A line argument: a name (`GPIO17`), or an offset when `--chip` is given.
    func address(_ argument: String) throws -> LineAddress {
        if let chip = self.chip {
            guard let offset = Int(argument), offset >= 0 else {
                throw ValidationError("with --chip, lines are offsets on the chip (0, 1, …); got '\(argument)'")
            }
            return .chipOffset(chip: chip, offset: offset)
        }
        guard !argument.isEmpty, Int(argument) == nil else {
            throw ValidationError("'\(argument)' is a number: give the line's name (GPIO\(argument)), or its chip with --chip CHIP and the offset")
        }
        return .name(argument)
    }
}

/// Shared by the board commands.
enum BoardCommand {
    /// Runs `watch` until it returns, a stop signal arrives or `limit` passes, whichever is first; the result of
    /// `watch` when it finished, success otherwise.
    static func watchUntilStopped(
        for limit: Duration?, _ watch: @escaping @Sendable () async -> Result<Void, any Error>
    ) async -> Result<Void, any Error> {
        await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            group.addTask { await watch() }
            group.addTask {
                await StopSignal.wait(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? .success(())
        }
    }

    /// The configuration at `--config`, or nil when the default path does not exist (the commands then work from
    /// their options alone). A configuration that exists but is invalid stops the command (exit 78).
    static func optionalConfiguration(_ global: GlobalOptions) throws -> AgentConfiguration? {
        if global.config == AgentConfiguration.defaultPath && !HostProcess.exists(global.config) {
            return nil
        }
        return try self.configuration(global)
    }

    /// The configuration at `--config` (exit 78 when it is invalid or missing).
    static func configuration(_ global: GlobalOptions) throws -> AgentConfiguration {
        do {
            let configuration = try ConfigurationLoader.load(path: global.config)
            // The loader already anchors relative paths at the file's folder; this keeps that rule whatever
            // loader version is in use.
            return BoardSetup.resolvingPaths(configuration, configurationFile: global.config)
        } catch {
            CommandOutput.error(error.description)
            throw ExitCode(ExitStatus.config)
        }
    }

    /// The GPIO backend: the options', else the configuration's, else libgpiod.
    static func backend(_ options: BackendOptions, _ global: GlobalOptions) throws -> any GPIOBackend {
        if let explicit = options.explicitBackend { return GPIOBackends.make(GPIOSettings(backend: explicit)) }
        let settings = try self.optionalConfiguration(global)?.gpio ?? GPIOSettings()
        return GPIOBackends.make(settings)
    }

    /// Reports an error the way every command does and exits with a status that tells the class apart.
    static func fail(_ command: String, _ error: AgentError) -> ExitCode {
        CommandOutput.error("tb-agent \(command): \(error.message)")
        return ExitCode(self.exitStatus(error))
    }

    /// 78 for configuration, 64 for usage, 77 for a permission problem, 69 for hardware that is not there.
    static func exitStatus(_ error: AgentError) -> Int32 {
        switch error.code {
        case .invalidConfiguration: return ExitStatus.config
        case .usage: return ExitStatus.usage
        default:
            if let cause = error.cause as? GPIOError, cause.code == .permissionDenied {
                return ExitStatus.noPermission
            }
            return ExitStatus.unavailable
        }
    }

    /// `GPIO17`, or `CHIP:OFFSET`: how results name a line (no spaces, so scripts can split on them).
    static func label(_ address: LineAddress) -> String {
        switch address {
        case .name(let name): return name
        case .chipOffset(let chip, let offset): return "\(chip):\(offset)"
        }
    }

    /// A monotonic timestamp in seconds with nanoseconds: `t=12.000345678`.
    static func stamp(_ time: Duration) -> String {
        let (seconds, attoseconds) = time.components
        let nanos = attoseconds / 1_000_000_000
        let digits = String(nanos)
        return "t=\(seconds).\(String(repeating: "0", count: max(0, 9 - digits.count)))\(digits)"
    }

    /// Prints a result line and flushes, so a pipe or a file sees it at once.
    static func emit(_ line: String) {
        print(line)
        fflush(nil)
    }

    static func parseDuration(_ text: String, option: String) throws -> Duration {
        guard let duration = DurationText.parse(text) else {
            throw ValidationError("\(option): '\(text)' is not \(DurationText.expectedForm)")
        }
        return duration
    }
}

/// Waits for a deadline or SIGINT/SIGTERM, whichever comes first: how the long-running board commands end
/// cleanly (lines released, the LED's trigger restored).
enum StopSignal {
    /// Returns after `duration` (nil: only a signal ends the wait), or at SIGINT/SIGTERM.
    static func wait(for duration: Duration?) async {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { continuation.yield() }
            source.resume()
            sources.append(source)
        }
        defer {
            for source in sources { source.cancel() }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in stream { return }
            }
            if let duration {
                group.addTask { try? await Task.sleep(for: duration) }
            }
            _ = await group.next()
            group.cancelAll()
            continuation.finish()
        }
    }
}
