import TextSearch

/// What a command line asks for.
public enum Invocation: Sendable {
    /// Print the help of the last command of the path (`-h`, `--help`, `help NAME…`, or a command that only
    /// groups subcommands given none).
    case help([CommandNode])
    /// Print the root's version (`--version`).
    case version(String)
    /// Run the last command of the path with these values.
    case run([CommandNode], ParsedValues)
}

/// Reads a command line against a command tree. Pure: no I/O, no process state.
///
/// The rules are the ones ArgumentParser follows, so that scripts written against it keep working: options and
/// positional arguments mix in any order; `--name VALUE` and `--name=VALUE`; a value never starts with `-`
/// (except `-` alone); the last occurrence of an option or flag counts; after `--` everything is positional;
/// `-h`/`--help` anywhere before `--` asks for the help of the command named so far (a command with subcommands
/// only sees what comes before the subcommand's name), before anything else is checked, and `--version` next.
public enum CommandLineParser {
    static let helpNames: Set<String> = ["-h", "--help"]
    static let versionName = "--version"

    /// The built-in `help [SUBCOMMAND…]` of the root command.
    static func helpCommand(root: CommandNode) -> CommandNode {
        var node = CommandNode(
            CommandConfiguration(commandName: "help", abstract: "Show subcommand help information.", shouldDisplay: false),
            arguments: [Argument<String>("subcommands", help: "", arity: .repeating(atLeastOne: false)).spec])
        node.listsHelpFlag = false
        return node
    }

    public static func parse(_ arguments: [String], root: CommandNode) -> Result<Invocation, CommandLineFailure> {
        let version = root.configuration.version
        var path = [root]
        var rest = arguments[...]
        // Walk down the subcommands.
        while let node = path.last, !node.configuration.subcommands.isEmpty {
            if path.count == 1, rest.first == "help", node.subcommand(named: "help") == nil {
                return self.help(Array(rest.dropFirst()), root: root)
            }
            // Only what comes before the subcommand's name belongs to this command.
            let own = rest.prefix { self.isOption($0) }
            if own.contains(where: self.helpNames.contains) { return .success(.help(path)) }
            if let version, own.contains(self.versionName) { return .success(.version(version)) }
            if let option = own.first {
                return .failure(CommandLineFailure(.unknownOption(self.optionName(option), suggestion: nil), path: path))
            }
            guard let name = rest.first else { return .success(.help(path)) }
            guard let subcommand = node.subcommand(named: name) else {
                let unexpected = Array(rest.prefix { $0 == "--" || !self.isOption($0) })
                let shown = node.configuration.subcommands.filter(\.configuration.shouldDisplay).map(\.name)
                let suggestion = unexpected.count == 1 ? self.closest(name, among: shown, below: 3) : nil
                return .failure(CommandLineFailure(.unexpectedArguments(unexpected, suggestion: suggestion), path: path))
            }
            path.append(subcommand)
            rest = rest.dropFirst()
        }
        guard let command = path.last else { return .success(.help(path)) }
        let beforeTerminator = rest.prefix { $0 != "--" }
        if beforeTerminator.contains(where: self.helpNames.contains) { return .success(.help(path)) }
        if let version, beforeTerminator.contains(self.versionName) { return .success(.version(version)) }
        switch self.values(Array(rest), for: command.arguments) {
        case .success(let values): return .success(.run(path, values))
        case .failure(let error): return .failure(CommandLineFailure(error, path: path))
        }
    }

    /// `help NAME…`: the help of the command the names lead to, as far as they match (none: the root's).
    static func help(_ arguments: [String], root: CommandNode) -> Result<Invocation, CommandLineFailure> {
        let helpNode = self.helpCommand(root: root)
        var path = [root]
        for argument in arguments where !self.helpNames.contains(argument) {
            if self.isOption(argument) {
                return .failure(CommandLineFailure(.unknownOption(self.optionName(argument), suggestion: nil), path: [root, helpNode]))
            }
        }
        let names = arguments.filter { !self.helpNames.contains($0) }
        if names == ["help"] { return .success(.help([root, helpNode])) }
        for name in names {
            guard let next = path.last?.subcommand(named: name) else { break }
            path.append(next)
        }
        return .success(.help(path))
    }

    /// Whether `text` is an option (`-x`, `--name`, `--name=value`) rather than a value; `-` alone is a value.
    static func isOption(_ text: String) -> Bool {
        text.count > 1 && text.hasPrefix("-") && text != "--"
    }

    /// `--name` of `--name=value`.
    static func optionName(_ text: String) -> String {
        guard text.hasPrefix("--"), let equals = text.firstIndex(of: "=") else { return text }
        return String(text[..<equals])
    }

    /// The values of a command that takes no subcommand.
    static func values(_ arguments: [String], for specs: [ArgumentSpec]) -> Result<ParsedValues, CommandLineError> {
        var values = ParsedValues()
        var positionals: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                positionals += arguments[index...]
                break
            }
            guard self.isOption(argument) else {
                positionals.append(argument)
                continue
            }
            let name: String
            var inline: String? = nil
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inline = String(argument[argument.index(after: equals)...])
            } else {
                name = argument
            }
            guard let (spec, positive) = self.lookup(name, in: specs) else {
                return .failure(.unknownOption(name, suggestion: self.suggestion(for: name, in: specs)))
            }
            switch spec.kind {
            case .flag:
                if let inline { return .failure(.flagTakesNoValue(name, value: inline)) }
                values.flags[spec.key] = positive
            case .option(let repeatable):
                let text: String
                if let inline {
                    guard !inline.isEmpty else { return .failure(.missingValue(synopsis: self.named(spec, name), help: spec.help)) }
                    text = inline
                } else if index < arguments.count, !self.isOption(arguments[index]), arguments[index] != "--" {
                    text = arguments[index]
                    index += 1
                } else {
                    return .failure(.missingValue(synopsis: self.named(spec, name), help: spec.help))
                }
                guard spec.accepts(text) else {
                    return .failure(.invalidValue(text, synopsis: self.named(spec, name), help: spec.help, allowed: spec.allValues))
                }
                values.texts[spec.key] = (repeatable ? values.texts[spec.key] ?? [] : []) + [text]
            case .positional:
                break  // never found by name
            }
        }
        for spec in specs where spec.isRequired && values.texts[spec.key] == nil {
            return .failure(.missing(spec))
        }
        return self.assign(positionals, to: specs.filter(\.isPositional), into: values)
    }

    /// Hands the positional values to the positional arguments in order; a repeating one takes the rest.
    static func assign(_ positionals: [String], to specs: [ArgumentSpec], into parsed: ParsedValues)
        -> Result<ParsedValues, CommandLineError>
    {
        var values = parsed
        var remaining = positionals[...]
        for spec in specs {
            guard case .positional(let arity) = spec.kind else { continue }
            let taken: [String]
            switch arity {
            case .required:
                guard let first = remaining.popFirst() else { return .failure(.missing(spec)) }
                taken = [first]
            case .optional:
                taken = remaining.popFirst().map { [$0] } ?? []
            case .repeating(let atLeastOne):
                if atLeastOne && remaining.isEmpty { return .failure(.missing(spec)) }
                taken = Array(remaining)
                remaining = []
            }
            for text in taken where !spec.accepts(text) {
                return .failure(.invalidValue(text, synopsis: spec.synopsis, help: spec.help, allowed: spec.allValues))
            }
            if !taken.isEmpty { values.texts[spec.key] = taken }
        }
        if !remaining.isEmpty { return .failure(.unexpectedArguments(Array(remaining), suggestion: nil)) }
        return .success(values)
    }

    /// The argument `name` (`--name`, `--no-name` or `-n`) stands for, and whether it is the positive form.
    static func lookup(_ name: String, in specs: [ArgumentSpec]) -> (ArgumentSpec, Bool)? {
        for spec in specs where !spec.isPositional {
            if name == "--" + spec.name { return (spec, true) }
            if case .flag(true) = spec.kind, name == "--no-" + spec.name { return (spec, false) }
            if let short = spec.shortName, name == "-" + String(short) { return (spec, true) }
        }
        return nil
    }

    /// How an error names an option: as it was typed (`-c <config>` or `--config <config>`).
    static func named(_ spec: ArgumentSpec, _ typed: String) -> String {
        "\(typed) <\(spec.name)>"
    }

    /// The long option closest to an unknown long option (edit distance below 4), like ArgumentParser.
    static func suggestion(for name: String, in specs: [ArgumentSpec]) -> String? {
        guard name.hasPrefix("--") else { return nil }
        return self.closest(name, among: specs.flatMap(\.longNames), below: 4)
    }

    /// The candidate with the smallest edit distance to `word`, if that distance is below `limit`; the first of
    /// equals.
    static func closest(_ word: String, among candidates: [String], below limit: Int) -> String? {
        var best: (String, Int)? = nil
        for candidate in candidates {
            let distance = editDistance(word, candidate)
            if distance < limit, distance < (best?.1 ?? Int.max) { best = (candidate, distance) }
        }
        return best?.0
    }
}
