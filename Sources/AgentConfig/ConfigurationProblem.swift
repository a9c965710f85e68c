/// One thing wrong with a configuration file: where it is and what to do about it.
public struct ConfigurationProblem: Sendable, Equatable, CustomStringConvertible {
    /// The file the problem is in (the configuration, a secret file it names, or a board profile).
    public var file: String
    /// 1-based line and column of the key (or of the parse error); nil when the problem has no place in the file,
    /// such as a missing table.
    public var line: Int?
    public var column: Int?
    /// The key path (`sensors[2].debounce`); empty for a problem with the whole file.
    public var keyPath: String
    /// What is wrong and the expected form; starts with the key path.
    public var message: String

    public init(file: String, line: Int?, column: Int?, keyPath: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    /// `FILE:LINE:COLUMN: message`, or `FILE: message` when there is no position.
    public var description: String {
        if let line = self.line, let column = self.column { return "\(self.file):\(line):\(column): \(self.message)" }
        return "\(self.file): \(self.message)"
    }
}

/// A configuration that cannot be used, with every problem found (not only the first).
public struct ConfigurationFileError: Error, Sendable, CustomStringConvertible {
    public var problems: [ConfigurationProblem]

    public init(problems: [ConfigurationProblem]) { self.problems = problems }

    /// One line per problem: `FILE:LINE:COLUMN: message`.
    public var description: String { self.problems.map(\.description).joined(separator: "\n") }
}
