import AgentCommandLine
import Testing

/// A small tree in the shape of tb-agent's: global options, a command with every kind of argument, a group with
/// subcommands, and a hidden command.
enum Sample {
    enum Level: String, CommandLineValue, CaseIterable { case low, medium, high }

    static let config = Option<String>("config", short: "c", help: "The configuration file.", default: "/etc/x.toml")
    static let count = Option<Int>("count", help: "How many.", default: 3)
    static let ratio = Option<Double>("ratio", help: "A ratio.")
    static let level = Option<Level>("level", help: "How loud.", default: .medium)
    static let tag = Option<String>("tag", help: "A tag; repeat for more.", isRepeatable: true)
    static let verbose = Flag("verbose", help: "Say more.")
    static let kernel = Flag("kernel", help: "Let the kernel do it.", inversion: true, default: true)
    static let tls = Flag("tls", help: "Use TLS.", inversion: true, default: nil)
    static let line = Argument<String>("line", help: "The line.")
    static let value = Argument<Int>("value", help: "0 or 1.", arity: .optional)
    static let lines = Argument<String>("lines", help: "Line names.", arity: .repeating(atLeastOne: true))

    static let watchArguments = [
        config.spec, count.spec, ratio.spec, level.spec, tag.spec, verbose.spec, kernel.spec, tls.spec, line.spec, value.spec,
    ]
    static let readArguments = [config.spec, lines.spec]

    static func node(_ name: String, _ arguments: [ArgumentSpec], shouldDisplay: Bool = true, abstract: String = "")
        -> CommandNode
    {
        CommandNode(
            CommandConfiguration(commandName: name, abstract: abstract.isEmpty ? "The \(name) command." : abstract, shouldDisplay: shouldDisplay),
            arguments: arguments, action: { _ in })
    }

    static let gpio = CommandNode(
        CommandConfiguration(
            commandName: "gpio", abstract: "Work with lines.", discussion: "Lines are named as the kernel names them.",
            subcommands: [node("watch", watchArguments), node("read", readArguments)]))

    static let root = CommandNode(
        CommandConfiguration(
            commandName: "tool", abstract: "A tool.", version: "1.2.3\nlib 4",
            subcommands: [node("run", [config.spec]), gpio, node("secret-thing", [], shouldDisplay: false)]))

    static func parse(_ arguments: [String]) -> Result<Invocation, CommandLineFailure> {
        CommandLineParser.parse(arguments, root: Self.root)
    }

    /// The values for a command line that runs a command, or the failure's error.
    static func values(_ arguments: [String]) throws -> ParsedValues {
        switch self.parse(arguments) {
        case .success(.run(_, let values)): return values
        case .success(let other): throw Unexpected(description: "not a run: \(other)")
        case .failure(let failure): throw failure.error
        }
    }

    static func error(_ arguments: [String]) -> CommandLineError? {
        if case .failure(let failure) = self.parse(arguments) { return failure.error }
        return nil
    }

    struct Unexpected: Error, CustomStringConvertible { var description: String }
}

@Suite struct CommandLineParserTests {
    @Test func longOptionsTakeTheNextValueOrTheValueAfterEquals() throws {
        let spaced = try Sample.values(["gpio", "watch", "--config", "/a.toml", "--count", "7", "L1"])
        #expect(spaced[Sample.config] == "/a.toml")
        #expect(spaced[Sample.count] == 7)
        let joined = try Sample.values(["gpio", "watch", "--config=/b.toml", "--ratio=0.5", "L1"])
        #expect(joined[Sample.config] == "/b.toml")
        #expect(joined[Sample.ratio] == 0.5)
        let short = try Sample.values(["gpio", "watch", "-c", "/c.toml", "L1"])
        #expect(short[Sample.config] == "/c.toml")
    }

    @Test func defaultsApplyWhenAnOptionIsNotGivenAndTheLastOccurrenceCounts() throws {
        let values = try Sample.values(["gpio", "watch", "L1", "--count", "1", "--count", "2"])
        #expect(values[Sample.config] == "/etc/x.toml")
        #expect(values[Sample.level] == .medium)
        #expect(values[Sample.ratio] == nil)
        #expect(values[Sample.count] == 2)
        #expect(try values.value(Sample.config) == "/etc/x.toml")
    }

    @Test func repeatableOptionsKeepEveryValue() throws {
        let values = try Sample.values(["gpio", "watch", "--tag", "a", "L1", "--tag=b"])
        #expect(values.all(Sample.tag) == ["a", "b"])
        #expect(values[Sample.tag] == "b")
    }

    @Test func flagsAndTheirInversions() throws {
        let plain = try Sample.values(["gpio", "watch", "L1"])
        #expect(plain.isSet(Sample.verbose) == false)
        #expect(plain[Sample.kernel] == true)
        #expect(plain[Sample.tls] == nil)
        let given = try Sample.values(["gpio", "watch", "--verbose", "--no-kernel", "--tls", "--no-tls", "L1"])
        #expect(given.isSet(Sample.verbose))
        #expect(given[Sample.kernel] == false)
        #expect(given[Sample.tls] == false)
        #expect(Sample.error(["gpio", "watch", "--verbose=yes", "L1"]) == .flagTakesNoValue("--verbose", value: "yes"))
        #expect(Sample.error(["gpio", "watch", "--no-verbose", "L1"]) == .unknownOption("--no-verbose", suggestion: "--verbose"))
    }

    @Test func positionalsMixWithOptionsInAnyOrder() throws {
        let values = try Sample.values(["gpio", "watch", "L1", "--count", "4", "1"])
        #expect(values[Sample.line] == "L1")
        #expect(values[Sample.value] == 1)
        let optional = try Sample.values(["gpio", "watch", "L1"])
        #expect(optional[Sample.value] == nil)
        let repeating = try Sample.values(["gpio", "read", "A", "--config", "/x", "B", "C"])
        #expect(repeating.all(Sample.lines) == ["A", "B", "C"])
    }

    @Test func missingAndExtraPositionals() {
        #expect(Sample.error(["gpio", "watch"]) == .missingArgument(synopsis: "<line>", help: "The line."))
        #expect(Sample.error(["gpio", "read"]) == .missingArgument(synopsis: "<lines> ...", help: "Line names."))
        #expect(Sample.error(["gpio", "watch", "L1", "1", "x"]) == .unexpectedArguments(["x"], suggestion: nil))
        #expect(Sample.error(["gpio", "watch", "L1", "1", "x", "y"])?.message == "2 unexpected arguments: 'x', 'y'")
        #expect(Sample.error(["gpio", "read"])?.helpLine == "<lines>  Line names.")
    }

    @Test func theTerminatorMakesEverythingAfterItPositional() throws {
        let values = try Sample.values(["gpio", "read", "--", "--help", "-c", "--version"])
        #expect(values.all(Sample.lines) == ["--help", "-c", "--version"])
        #expect(values[Sample.config] == "/etc/x.toml")
    }

    @Test func typedValuesThatDoNotConvertNameTheOptionAndTheExpectedForm() {
        let count = Sample.error(["gpio", "watch", "--count", "abc", "L1"])
        #expect(count == .invalidValue("abc", synopsis: "--count <count>", help: "How many.", allowed: []))
        #expect(count?.message == "The value 'abc' is invalid for '--count <count>'")
        #expect(count?.helpLine == "--count <count>  How many.")
        let level = Sample.error(["gpio", "watch", "--level", "loud", "L1"])
        #expect(level?.message == "The value 'loud' is invalid for '--level <level>'. Please provide one of 'low', 'medium' or 'high'.")
        let value = Sample.error(["gpio", "watch", "L1", "x"])
        #expect(value?.message == "The value 'x' is invalid for '<value>'")
    }

    @Test func aMissingValueIsNamed() throws {
        let atEnd = Sample.error(["gpio", "watch", "L1", "--config"])
        #expect(atEnd == .missingValue(synopsis: "--config <config>", help: "The configuration file."))
        #expect(atEnd?.message == "Missing value for '--config <config>'")
        #expect(Sample.error(["gpio", "watch", "--config", "--count", "2", "L1"])?.message == "Missing value for '--config <config>'")
        #expect(Sample.error(["gpio", "watch", "--config=", "L1"])?.message == "Missing value for '--config <config>'")
        // `-` alone is a value (standard input, by convention).
        #expect(try Sample.values(["gpio", "watch", "--config", "-", "L1"])[Sample.config] == "-")
    }

    @Test func anUnknownOptionSuggestsTheClosestOne() {
        #expect(Sample.error(["run", "--confg", "x"]) == .unknownOption("--confg", suggestion: "--config"))
        #expect(Sample.error(["run", "--confg"])?.message == "Unknown option '--confg'. Did you mean '--config'?")
        #expect(Sample.error(["run", "--bogus"]) == .unknownOption("--bogus", suggestion: nil))
        #expect(Sample.error(["run", "-x"]) == .unknownOption("-x", suggestion: nil))
        #expect(Sample.error(["--config", "x", "run"]) == .unknownOption("--config", suggestion: nil))
    }

    @Test func anUnknownSubcommandSuggestsAVisibleOne() {
        #expect(Sample.error(["rnu"]) == .unexpectedArguments(["rnu"], suggestion: "run"))
        #expect(Sample.error(["gpio", "raed"])?.message == "Unexpected argument 'raed'. Did you mean 'read'?")
        #expect(Sample.error(["secret-thnig"]) == .unexpectedArguments(["secret-thnig"], suggestion: nil))
        #expect(Sample.error(["zzzzzz"]) == .unexpectedArguments(["zzzzzz"], suggestion: nil))
    }

    @Test func nestedSubcommandsAndHiddenOnesResolve() throws {
        guard case .success(.run(let path, _)) = Sample.parse(["gpio", "read", "A"]) else {
            Issue.record("gpio read did not resolve")
            return
        }
        #expect(path.map(\.name) == ["tool", "gpio", "read"])
        guard case .success(.run(let hidden, _)) = Sample.parse(["secret-thing"]) else {
            Issue.record("the hidden command did not resolve")
            return
        }
        #expect(hidden.map(\.name) == ["tool", "secret-thing"])
    }

    @Test func helpAndVersionComeFirst() {
        func helpPath(_ arguments: [String]) -> [String]? {
            if case .success(.help(let path)) = Sample.parse(arguments) { return path.map(\.name) }
            return nil
        }
        #expect(helpPath([]) == ["tool"])
        #expect(helpPath(["-h"]) == ["tool"])
        #expect(helpPath(["gpio"]) == ["tool", "gpio"])
        #expect(helpPath(["gpio", "watch", "--count", "abc", "--help"]) == ["tool", "gpio", "watch"])
        #expect(helpPath(["--help", "run"]) == ["tool"])
        #expect(helpPath(["help", "gpio", "read"]) == ["tool", "gpio", "read"])
        #expect(helpPath(["help", "nothing"]) == ["tool"])
        #expect(helpPath(["help", "secret-thing"]) == ["tool", "secret-thing"])
        #expect(helpPath(["help", "help"]) == ["tool", "help"])
        if case .success(.version(let version)) = Sample.parse(["run", "--version"]) {
            #expect(version == "1.2.3\nlib 4")
        } else {
            Issue.record("--version was not recognised")
        }
    }
}
