import AgentBoard
import AgentCore
import AgentCommandLine

/// `tb-agent button`: watch the re-provision button and say what each press means.
struct ButtonCommand: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "button",
        abstract: "Watch the button and print press, hold, release and re-provision events.",
        discussion: """
            The button is the configuration's [button], or --line LINE with the options below. One line per \
            event, stamped on the monotonic clock: `pressed t=…`, `held t=…` (the re-provision threshold is \
            reached: release now), `released t=… held=1.52s`, `reprovision-requested t=…`, `claim-requested t=…` \
            (three short presses within two seconds; `claim-ignored` when repeated within 10 s), and at start \
            `ignored-pressed-at-start` for a button already pressed (it counts once seen released). Nothing is \
            re-provisioned or claimed: this only shows what the agent would do. The LED ([led]) shows the feedback.
            """)

    static let line = Option<String>("line", help: "The button's line (GPIO27), or its offset with --chip; overrides [button] line.")
    static let hold = Option<String>("hold", help: "Re-provision hold, like 5s (default: [button] reprovision_hold, else 5s).")
    static let debounce = Option<String>("debounce", help: "Debounce, like 50ms (default: [button] debounce, else 50ms).")
    static let bias = Option<LineBias>("bias", help: "Bias (default: [button] bias, else pull-up).")
    static let activeLow = Flag(
        "active-low", help: "The button pulls the line low when pressed (default: [button] active_low, else yes).",
        inversion: true, default: nil)
    static let duration = Option<String>("for", help: "Exit after this long, like 30s.")
    static let exitOnRequest = Flag("exit-on-request", help: "Exit after the first re-provision request.")

    static var arguments: [ArgumentSpec] {
        GlobalOptions.arguments + BackendOptions.arguments + [
            Self.line.spec, Self.hold.spec, Self.debounce.spec, Self.bias.spec, Self.activeLow.spec, Self.duration.spec,
            Self.exitOnRequest.spec,
        ]
    }

    var global: GlobalOptions
    var backendOptions: BackendOptions
    var line: String?
    var hold: String?
    var debounce: String?
    var bias: LineBias?
    var activeLow: Bool?
    var duration: String?
    var exitOnRequest: Bool

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
        self.backendOptions = try BackendOptions(values)
        self.line = values[Self.line]
        self.hold = values[Self.hold]
        self.debounce = values[Self.debounce]
        self.bias = values[Self.bias]
        self.activeLow = values[Self.activeLow]
        self.duration = values[Self.duration]
        self.exitOnRequest = values.isSet(Self.exitOnRequest)
    }

    func run() async throws {
        let configuration = try BoardCommand.optionalConfiguration(self.global)
        var settings: ButtonSettings
        if let line = self.line {
            settings = configuration?.button ?? ButtonSettings(line: .name(line))
            settings.line = try self.backendOptions.address(line)
        } else if let configured = configuration?.button {
            settings = configured
        } else {
            throw ValidationError("no button: give --line LINE, or a configuration with [button]")
        }
        if let hold = self.hold { settings.reprovisionHold = try BoardCommand.parseDuration(hold, option: "--hold") }
        if let debounce = self.debounce { settings.debounce = try BoardCommand.parseDuration(debounce, option: "--debounce") }
        if let bias = self.bias { settings.bias = bias }
        if let activeLow = self.activeLow { settings.activeLow = activeLow }
        let limit = try self.duration.map { try BoardCommand.parseDuration($0, option: "--for") }
        let backend = self.backendOptions.explicitBackend.map { GPIOBackends.make(GPIOSettings(backend: $0)) }
            ?? GPIOBackends.make(configuration?.gpio ?? GPIOSettings())

        // The LED shows the hold's progress, as the agent's would; a missing LED is not this command's problem.
        var led: LEDController? = nil
        if let ledSettings = configuration?.led, self.line == nil || configuration?.button != nil {
            let files = DiskBoardFiles(root: configuration?.device.sysroot ?? "/")
            do {
                led = try LEDController(output: try BoardSetup.led(ledSettings, files: files, gpio: backend))
            } catch {
                CommandOutput.error("tb-agent button: the LED will not show feedback: \(error.message)")
            }
        }
        let monitor: ButtonMonitor
        do {
            monitor = try ButtonMonitor(backend: backend, settings: settings, led: led)
        } catch {
            led?.stop()
            throw BoardCommand.fail("button", error)
        }
        let label = BoardCommand.label(settings.line)
        let kernel = monitor.watcher.input.kernelDebounce.map { ", kernel debounce \(DurationText.format($0))" } ?? ""
        BoardCommand.emit("watching \(label) (\(settings.activeLow ? "active-low" : "active-high"), bias \(settings.bias.rawValue), debounce \(DurationText.format(settings.debounce))\(kernel), hold \(DurationText.format(settings.reprovisionHold)))")
        for event in monitor.startEvents { BoardCommand.emit(Self.line(for: event)) }
        let exitOnRequest = self.exitOnRequest
        let outcome = await BoardCommand.watchUntilStopped(for: limit) {
            var gesture = MultiPressDetector(cooldown: MultiPressDetector.boardCooldown)
            do {
                for try await output in monitor.outputs {
                    guard case .button(let event) = output else { continue }
                    BoardCommand.emit(Self.line(for: event))
                    switch gesture.handle(event) {
                    case .gesture(let at)?:
                        BoardCommand.emit("claim-requested \(BoardCommand.stamp(at)) (three short presses: the agent would send a claim request)")
                    case .refused(let at, let retryIn)?:
                        BoardCommand.emit("claim-ignored \(BoardCommand.stamp(at)) (again within \(BoardTime.seconds(MultiPressDetector.boardCooldown)); the next counts in \(BoardTime.seconds(retryIn)))")
                    case nil: break
                    }
                    if exitOnRequest, case .reprovisionRequested = event { return .success(()) }
                }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        monitor.stop()
        led?.stop()
        if case .failure(let error) = outcome {
            CommandOutput.error("tb-agent button: \(error)")
            throw ExitCode(ExitStatus.ioError)
        }
    }

    static func line(for event: LongPressDetector.Event) -> String {
        switch event {
        case .ignoredPressedAtStart(let at): return "ignored-pressed-at-start \(BoardCommand.stamp(at)) (a button pressed at start counts once released)"
        case .armed(let at): return "armed \(BoardCommand.stamp(at))"
        case .pressed(let at): return "pressed \(BoardCommand.stamp(at))"
        case .thresholdReached(let at): return "held \(BoardCommand.stamp(at)) (release now to re-provision)"
        case .stuck(let at): return "stuck \(BoardCommand.stamp(at)) (held too long: this press is ignored)"
        case .released(let at, let heldFor): return "released \(BoardCommand.stamp(at)) held=\(BoardTime.seconds(heldFor))"
        case .reprovisionRequested(let at): return "reprovision-requested \(BoardCommand.stamp(at))"
        }
    }
}
