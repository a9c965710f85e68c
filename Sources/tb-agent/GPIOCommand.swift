import AgentBoard
import AgentCore
import AgentCommandLine

/// `tb-agent gpio`: exercise GPIO lines without a server (a technician at the board, the real-kernel test).
enum GPIOCommand {
    static let node = CommandNode(CommandConfiguration(
        commandName: "gpio",
        abstract: "Read, watch, set and list GPIO lines through the agent's own GPIO code.",
        discussion: """
            Lines are named as the kernel names them (GPIO17 on a Raspberry Pi), or given as offsets with \
            --chip CHIP. The backend is the configuration's [gpio] (when --config or /etc/tb-agent/config.toml \
            exists), else libgpiod; --backend simulated --simulated-dir DIR uses a simulated board.
            """,
        subcommands: [Read.node, Watch.node, Set.node, List.node]))
}

extension LineBias: CommandLineValue {}

extension GPIOCommand {
    struct Read: AsyncCommand {
        static let configuration = CommandConfiguration(
            commandName: "read",
            abstract: "Print the level of each line: LINE=0 or LINE=1.")

        static let bias = Option<LineBias>("bias", help: "Bias to request: pull-up, pull-down, disable, as-is.", default: .asIs)
        static let activeLow = Flag("active-low", help: "Report the inverted level (a line that is active when low).")
        static let lines = Argument<String>(
            "lines", help: "Line names (GPIO17), or offsets with --chip.", arity: .repeating(atLeastOne: true))

        static var arguments: [ArgumentSpec] {
            GlobalOptions.arguments + BackendOptions.arguments + [Self.bias.spec, Self.activeLow.spec, Self.lines.spec]
        }

        var global: GlobalOptions
        var backendOptions: BackendOptions
        var bias: LineBias
        var activeLow: Bool
        var lines: [String]

        init(_ values: ParsedValues) throws {
            self.global = try GlobalOptions(values)
            self.backendOptions = try BackendOptions(values)
            self.bias = try values.value(Self.bias)
            self.activeLow = values.isSet(Self.activeLow)
            self.lines = values.all(Self.lines)
        }

        func run() async throws {
            let addresses = try self.lines.map { try self.backendOptions.address($0) }
            let backend = try BoardCommand.backend(self.backendOptions, self.global)
            // Every line is tried; the exit status is the first failure's.
            var status: Int32 = 0
            for address in addresses {
                do {
                    let input = try backend.input(address, InputRequest(bias: self.bias, activeLow: self.activeLow))
                    BoardCommand.emit("\(BoardCommand.label(address))=\(try input.read().digit)")
                } catch {
                    CommandOutput.error("tb-agent gpio read: \(error.message)")
                    if status == 0 { status = BoardCommand.exitStatus(error) }
                }
            }
            if status != 0 { throw ExitCode(status) }
        }
    }

    struct Watch: AsyncCommand {
        static let configuration = CommandConfiguration(
            commandName: "watch",
            abstract: "Print the line's debounced changes with their kernel timestamps, one per line.",
            discussion: """
                Output: `initial LINE=L t=SECONDS` once, then `change LINE=L t=SECONDS` for each debounced \
                change, stamped with the time the line settled (CLOCK_MONOTONIC, the kernel's event clock). With \
                --raw, every edge the kernel reports is printed too, as `edge LINE=L t=SECONDS`. When the kernel \
                debounces the line as well (libgpiod v2, on a chip that can), `kernel-debounce LINE PERIOD` comes \
                first, and the edges are the ones that outlasted the period, stamped with the time they settled.
                """)

        static let debounce = Option<String>(
            "debounce", help: "How long a level must hold to count, like 20ms (0ms reports every edge).", default: "20ms")
        static let bias = Option<LineBias>("bias", help: "Bias to request: pull-up, pull-down, disable, as-is.", default: .asIs)
        static let activeLow = Flag("active-low", help: "Report the inverted level (a line that is active when low).")
        static let raw = Flag("raw", help: "Also print every raw edge.")
        static let kernelDebounce = Flag(
            "kernel-debounce",
            help: "Ask the kernel to debounce too, with the same period (libgpiod v2, where the chip can); the software debouncer runs either way.",
            inversion: true, default: true)
        static let count = Option<Int>("count", help: "Exit after this many debounced changes.")
        static let duration = Option<String>("for", help: "Exit after this long, like 10s.")
        static let line = Argument<String>("line", help: "The line name (GPIO17), or its offset with --chip.")

        static var arguments: [ArgumentSpec] {
            GlobalOptions.arguments + BackendOptions.arguments + [
                Self.debounce.spec, Self.bias.spec, Self.activeLow.spec, Self.raw.spec, Self.kernelDebounce.spec,
                Self.count.spec, Self.duration.spec, Self.line.spec,
            ]
        }

        var global: GlobalOptions
        var backendOptions: BackendOptions
        var debounce: String
        var bias: LineBias
        var activeLow: Bool
        var raw: Bool
        var kernelDebounce: Bool
        var count: Int?
        var duration: String?
        var line: String

        init(_ values: ParsedValues) throws {
            self.global = try GlobalOptions(values)
            self.backendOptions = try BackendOptions(values)
            self.debounce = try values.value(Self.debounce)
            self.bias = try values.value(Self.bias)
            self.activeLow = values.isSet(Self.activeLow)
            self.raw = values.isSet(Self.raw)
            self.kernelDebounce = values.isSet(Self.kernelDebounce)
            self.count = values[Self.count]
            self.duration = values[Self.duration]
            self.line = try values.value(Self.line)
        }

        func run() async throws {
            let address = try self.backendOptions.address(self.line)
            let window = try BoardCommand.parseDuration(self.debounce, option: "--debounce")
            let limit = try self.duration.map { try BoardCommand.parseDuration($0, option: "--for") }
            let backend = try BoardCommand.backend(self.backendOptions, self.global)
            let label = BoardCommand.label(address)
            let watcher: LineWatcher<WatchedLine>
            do {
                let input = try backend.input(
                    address, InputRequest(bias: self.bias, activeLow: self.activeLow, edges: true, consumer: "tb-agent gpio watch",
                                          debounce: self.kernelDebounce ? window : .zero))
                let raw = self.raw
                watcher = try LineWatcher(input: input) { level, time in
                    WatchedLine(initial: level, at: time, debounce: window, reportRawEdges: raw)
                }
            } catch {
                throw BoardCommand.fail("gpio watch", error)
            }
            let machine = watcher.machine
            if let period = watcher.input.kernelDebounce {
                BoardCommand.emit("kernel-debounce \(label) \(DurationText.format(period))")
            }
            BoardCommand.emit("initial \(label)=\(machine.debouncer.level.digit) \(BoardCommand.stamp(machine.debouncer.rawSince))")
            let wanted = self.count
            let outcome = await BoardCommand.watchUntilStopped(for: limit) {
                var changes = 0
                do {
                    for try await output in watcher.outputs {
                        switch output {
                        case .edge(let edge):
                            BoardCommand.emit("edge \(label)=\(edge.level.digit) \(BoardCommand.stamp(edge.timestamp))")
                        case .change(let change):
                            BoardCommand.emit("change \(label)=\(change.level.digit) \(BoardCommand.stamp(change.timestamp))")
                            changes += 1
                            if let wanted, changes >= wanted { return .success(()) }
                        }
                    }
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            watcher.stop()
            if case .failure(let error) = outcome {
                CommandOutput.error("tb-agent gpio watch: \(error)")
                throw ExitCode(ExitStatus.ioError)
            }
        }
    }

    struct Set: AsyncCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Drive an output line to 0 or 1.",
            discussion: """
                Without --hold the line is released as soon as it is set, and the kernel may let it fall back; \
                --hold keeps it driven (until the time is up, or Ctrl-C).
                """)

        static let activeLow = Flag("active-low", help: "Drive the inverted level (an LED wired to 3.3 V).")
        static let hold = Option<String>("hold", help: "Keep the line driven this long, like 5s.")
        static let line = Argument<String>("line", help: "The line name (GPIO22), or its offset with --chip.")
        static let value = Argument<String>("value", help: "0 or 1.")

        static var arguments: [ArgumentSpec] {
            GlobalOptions.arguments + BackendOptions.arguments
                + [Self.activeLow.spec, Self.hold.spec, Self.line.spec, Self.value.spec]
        }

        var global: GlobalOptions
        var backendOptions: BackendOptions
        var activeLow: Bool
        var hold: String?
        var line: String
        var value: String

        init(_ values: ParsedValues) throws {
            self.global = try GlobalOptions(values)
            self.backendOptions = try BackendOptions(values)
            self.activeLow = values.isSet(Self.activeLow)
            self.hold = values[Self.hold]
            self.line = try values.value(Self.line)
            self.value = try values.value(Self.value)
        }

        func run() async throws {
            let address = try self.backendOptions.address(self.line)
            guard let level = LineLevel(digit: self.value) else {
                throw ValidationError("the value must be 0 or 1; got '\(self.value)'")
            }
            let hold = try self.hold.map { try BoardCommand.parseDuration($0, option: "--hold") }
            let backend = try BoardCommand.backend(self.backendOptions, self.global)
            let output: any GPIOOutput
            do {
                output = try backend.output(address, activeLow: self.activeLow, initial: level, consumer: "tb-agent gpio set")
            } catch {
                throw BoardCommand.fail("gpio set", error)
            }
            BoardCommand.emit("\(BoardCommand.label(address))=\(level.digit)")
            if let hold { await StopSignal.wait(for: hold) }
            withExtendedLifetime(output) {}
        }
    }

    struct List: AsyncCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the GPIO chips with their labels and line names.")

        static var arguments: [ArgumentSpec] { GlobalOptions.arguments + BackendOptions.arguments }

        var global: GlobalOptions
        var backendOptions: BackendOptions

        init(_ values: ParsedValues) throws {
            self.global = try GlobalOptions(values)
            self.backendOptions = try BackendOptions(values)
        }

        func run() async throws {
            let backend = try BoardCommand.backend(self.backendOptions, self.global)
            let chips: [GPIOChipDescription]
            do {
                chips = try backend.describe()
            } catch {
                throw BoardCommand.fail("gpio list", error)
            }
            if chips.isEmpty { CommandOutput.error("no GPIO chips (/dev/gpiochip*) on this machine") }
            for chip in chips {
                BoardCommand.emit("\(chip.name) [\(chip.label)] \(chip.lineNames.count) lines")
                for (offset, name) in chip.lineNames.enumerated() where !name.isEmpty {
                    BoardCommand.emit("  \(offset)\t\(name)")
                }
            }
        }
    }
}
