import AgentCore
import AgentGPIO
import AgentHost
import AgentPlatform

#if canImport(Glibc)
import Glibc
#endif

/// Builds the board's parts from the configuration.
public enum BoardSetup {
    /// The configuration with its relative paths (`[device] sysroot`, `state_dir`, `[gpio] simulated_dir`)
    /// resolved against the folder of the configuration file, so a configuration means the same thing whatever
    /// the current directory. Absolute paths are left alone.
    public static func resolvingPaths(_ configuration: AgentConfiguration, configurationFile: String)
        -> AgentConfiguration
    {
        let base = HostProcess.parent(of: HostProcess.absolutePath(configurationFile))
        var resolved = configuration
        resolved.device.sysroot = Self.resolve(configuration.device.sysroot, against: base)
        resolved.device.stateDir = Self.resolve(configuration.device.stateDir, against: base)
        if case .simulated(let directory) = configuration.gpio.backend {
            resolved.gpio.backend = .simulated(directory: Self.resolve(directory, against: base))
        }
        return resolved
    }

    /// Where the sensors read from and keep their state; `gpio` is the backend `[gpio] backend` names (the
    /// executable chooses it: this module does not know the simulated one).
    public static func sensorEnvironment(_ configuration: AgentConfiguration, gpio: any GPIOBackend) -> SensorEnvironment {
        SensorEnvironment(
            files: DiskBoardFiles(root: configuration.device.sysroot),
            gpio: gpio,
            counters: CounterStore(stateDirectory: configuration.device.stateDir),
            telemetryInterval: configuration.telemetry.interval)
    }

    /// The LED `[led]` names.
    public static func led(_ settings: LEDSettings, files: any BoardFiles, gpio: any GPIOBackend)
        throws(AgentError) -> any LEDOutput
    {
        switch settings.target {
        case .sysfs(let name): return try SysfsLED(files: files, name: name)
        case .line(let line): return try GPIOLED(backend: gpio, line: line, activeLow: settings.activeLow)
        }
    }

    static func resolve(_ path: String, against base: String) -> String {
        guard !path.isEmpty, !path.hasPrefix("/") else { return path }
        return HostProcess.normalize("\(base)/\(path)")
    }
}

/// The re-provision button: a debounced input with long-press detection, showing its progress on the LED.
public final class ButtonMonitor: Sendable {
    public let watcher: LineWatcher<ButtonWatch>

    /// Requests the button's line and starts watching it.
    ///
    /// - Parameter led: gets the feedback (held, release now) while the button is held.
    public init(backend: any GPIOBackend, settings: ButtonSettings, led: LEDController? = nil) throws(AgentError) {
        let request = InputRequest(bias: settings.bias, activeLow: settings.activeLow, edges: true,
                                   consumer: "tb-agent button", debounce: settings.debounce)
        let input = try backend.input(settings.line, request)
        self.watcher = try LineWatcher(input: input, onStep: { machine, _ in
            led?.setFeedback(machine.feedback)
        }) { level, time in
            ButtonWatch(initial: level, at: time, debounce: settings.debounce, hold: settings.reprovisionHold)
        }
    }

    /// What the detector said at start (a button pressed at start is ignored until released).
    public var startEvents: [LongPressDetector.Event] { self.watcher.machine.startEvents }
    /// Debounced changes and button events.
    public var outputs: AsyncThrowingStream<ButtonWatch.Output, any Error> { self.watcher.outputs }

    public func stop() { self.watcher.stop() }
}
