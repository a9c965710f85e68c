import AgentBoard
import AgentCore
import AgentCommandLine

/// `tb-agent led`: show a status pattern on the LED.
struct LEDCommand: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "led",
        abstract: "Show one of the status LED's patterns, to check the LED and learn the patterns.",
        discussion: """
            The LED is the configuration's [led], or --sysfs NAME (under the sysroot's sys/class/leds), or \
            --line LINE (a GPIO output). A sysfs LED's trigger is set to none while the pattern shows and \
            restored afterwards. Runs until --for elapses or Ctrl-C.
            """)

    static let sysfs = Option<String>("sysfs", help: "A sysfs LED name (ACT).")
    static let line = Option<String>("line", help: "A GPIO output line (GPIO22), or its offset with --chip.")
    static let activeLow = Flag("active-low", help: "The GPIO LED lights when the line is low.")
    static let sysroot = Option<String>("sysroot", help: "The system root for --sysfs (default: the configuration's, else /).")
    static let duration = Option<String>("for", help: "Show the pattern this long, like 5s.")
    static let list = Flag("list", help: "List the patterns.")
    static let pattern = Argument<String>(
        "pattern", help: "The pattern: \(LEDState.allCases.map(\.rawValue).joined(separator: ", ")).", arity: .optional)

    static var arguments: [ArgumentSpec] {
        GlobalOptions.arguments + BackendOptions.arguments + [
            Self.sysfs.spec, Self.line.spec, Self.activeLow.spec, Self.sysroot.spec, Self.duration.spec, Self.list.spec,
            Self.pattern.spec,
        ]
    }

    var global: GlobalOptions
    var backendOptions: BackendOptions
    var sysfs: String?
    var line: String?
    var activeLow: Bool
    var sysroot: String?
    var duration: String?
    var list: Bool
    var pattern: String?

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
        self.backendOptions = try BackendOptions(values)
        self.sysfs = values[Self.sysfs]
        self.line = values[Self.line]
        self.activeLow = values.isSet(Self.activeLow)
        self.sysroot = values[Self.sysroot]
        self.duration = values[Self.duration]
        self.list = values.isSet(Self.list)
        self.pattern = values[Self.pattern]
    }

    static func describe(_ state: LEDState) -> String {
        switch state {
        case .off: return "off"
        case .provisioning: return "fast blink, 4 Hz: provisioning"
        case .connecting: return "slow blink, 1 Hz: connecting"
        case .offline: return "slow blink, 1 Hz: offline, retrying"
        case .buffering: return "slow blink, 1 Hz: offline, keeping telemetry"
        case .online: return "steady on: online"
        case .attention: return "double flash every 1.5 s: a person must act (provisioning refused, credentials rejected, configuration invalid)"
        case .buttonHeld: return "on with a short gap each second: button held, keep holding"
        case .releaseNow: return "rapid flicker, 10 Hz: release the button now to re-provision"
        case .identify: return "three quick flashes, then a pause: identify this board"
        case .claiming: return "a long flash and a short one: a claim request was sent, a person can claim the device"
        case .updating: return "three flashes, each longer, then a pause: online and downloading a firmware update"
        }
    }

    func run() async throws {
        if self.list {
            for state in LEDState.allCases { BoardCommand.emit("\(state.rawValue)\t\(Self.describe(state))") }
            return
        }
        guard let pattern = self.pattern else { throw ValidationError("give a pattern, or --list") }
        guard let state = LEDState(rawValue: pattern) else {
            throw ValidationError("unknown pattern '\(pattern)'; patterns: \(LEDState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if self.sysfs != nil && self.line != nil { throw ValidationError("give --sysfs or --line, not both") }
        let limit = try self.duration.map { try BoardCommand.parseDuration($0, option: "--for") }
        // The options alone are enough for a GPIO LED with a backend, or a sysfs LED with a sysroot.
        let selfContained = (self.line != nil && self.backendOptions.explicitBackend != nil)
            || (self.sysfs != nil && self.sysroot != nil)
        let configuration = selfContained ? nil : try BoardCommand.optionalConfiguration(self.global)
        let settings: LEDSettings
        if let name = self.sysfs {
            settings = LEDSettings(target: .sysfs(name: name))
        } else if let line = self.line {
            settings = LEDSettings(target: .line(try self.backendOptions.address(line)), activeLow: self.activeLow)
        } else if let configured = configuration?.led {
            settings = configured
        } else {
            throw ValidationError("no LED: give --sysfs NAME or --line LINE, or a configuration with [led]")
        }
        let files = DiskBoardFiles(root: self.sysroot ?? configuration?.device.sysroot ?? "/")
        let backend = self.backendOptions.explicitBackend.map { GPIOBackends.make(GPIOSettings(backend: $0)) }
            ?? GPIOBackends.make(configuration?.gpio ?? GPIOSettings())
        let controller: LEDController
        do {
            let output = try BoardSetup.led(settings, files: files, gpio: backend)
            controller = try LEDController(output: output, initial: state)
        } catch {
            throw BoardCommand.fail("led", error)
        }
        BoardCommand.emit("\(state.rawValue) on \(controller.outputName): \(Self.describe(state))")
        await StopSignal.wait(for: limit)
        controller.stop()
        if let error = controller.lastError {
            CommandOutput.error("tb-agent led: \(error.message)")
            throw ExitCode(ExitStatus.ioError)
        }
    }
}
