import Foundation

/// One option of a subcommand, as declared; help text is generated from these.
public struct OptionSpec: Sendable {
    public enum Kind: Sendable {
        /// `--name VALUE`
        case value(placeholder: String)
        /// `--name VALUE`, may be given several times.
        case repeated(placeholder: String)
        /// `--name` alone.
        case flag
    }

    public let name: String
    public let kind: Kind
    public let help: String
    /// Shown in help as "(default: …)"; nil when the option has no default.
    public let defaultValue: String?

    public static func value(
        _ name: String, _ placeholder: String, _ help: String, default d: String? = nil
    ) -> OptionSpec {
        OptionSpec(name: name, kind: .value(placeholder: placeholder), help: help, defaultValue: d)
    }

    public static func repeated(_ name: String, _ placeholder: String, _ help: String)
        -> OptionSpec
    {
        OptionSpec(
            name: name, kind: .repeated(placeholder: placeholder), help: help, defaultValue: nil)
    }

    public static func flag(_ name: String, _ help: String) -> OptionSpec {
        OptionSpec(name: name, kind: .flag, help: help, defaultValue: nil)
    }
}

/// A command-line mistake: names the flag and what was expected. Exit status 2.
public struct UsageError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Parsed options of one subcommand, with typed accessors whose errors name the flag.
public struct ParsedArguments {
    public let command: String
    var values: [String: [String]]
    var flags: Set<String>
    public let positional: [String]
    let specs: [String: OptionSpec]

    /// Parses `arguments` against `specs`; `--name=value` and `--name value` both work.
    public init(
        command: String, specs: [OptionSpec], arguments: [String], positional allowed: Int = 0
    )
        throws
    {
        self.command = command
        var byName: [String: OptionSpec] = [:]
        for s in specs { byName[s.name] = s }
        self.specs = byName
        var values: [String: [String]] = [:]
        var flags = Set<String>()
        var positional: [String] = []
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            guard arg.hasPrefix("--"), arg.count > 2 else {
                positional.append(arg)
                continue
            }
            var name = String(arg.dropFirst(2))
            var inline: String?
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let spec = byName[name] else {
                let near = byName.keys.filter { $0.hasPrefix(String(name.prefix(3))) }.sorted()
                let hint =
                    near.isEmpty
                    ? "" : " (did you mean \(near.map { "--" + $0 }.joined(separator: ", "))?)"
                throw UsageError(
                    "isfgan \(command): unknown option --\(name)\(hint); "
                        + "see 'isfgan \(command) --help'")
            }
            switch spec.kind {
            case .flag:
                if inline != nil {
                    throw UsageError("isfgan \(command): --\(name) takes no value")
                }
                flags.insert(name)
            case .value, .repeated:
                let v: String
                if let inline {
                    v = inline
                } else {
                    guard i < arguments.count else {
                        throw UsageError("isfgan \(command): --\(name) needs a value")
                    }
                    v = arguments[i]
                    i += 1
                }
                if case .value = spec.kind, values[name] != nil {
                    throw UsageError("isfgan \(command): --\(name) is given more than once")
                }
                values[name, default: []].append(v)
            }
        }
        if positional.count > allowed {
            throw UsageError(
                "isfgan \(command): unexpected argument '\(positional[allowed])'; "
                    + "see 'isfgan \(command) --help'")
        }
        self.values = values
        self.flags = flags
        self.positional = positional
    }

    public func has(_ name: String) -> Bool { values[name] != nil || flags.contains(name) }
    public func flag(_ name: String) -> Bool { flags.contains(name) }

    /// The option's value, its declared default, or nil.
    public func string(_ name: String) -> String? {
        values[name]?.last ?? specs[name]?.defaultValue
    }

    public func strings(_ name: String) -> [String] { values[name] ?? [] }

    /// A value that must be present.
    public func required(_ name: String) throws -> String {
        guard let v = string(name) else {
            throw UsageError("isfgan \(command): --\(name) is required")
        }
        return v
    }

    public func int(_ name: String, range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let s = string(name) else { return nil }
        guard let v = Int(s) else {
            throw UsageError("isfgan \(command): --\(name) expects an integer, got '\(s)'")
        }
        if let range, !range.contains(v) {
            throw UsageError(
                "isfgan \(command): --\(name) must be in "
                    + "\(range.lowerBound)...\(range.upperBound), got \(v)"
            )
        }
        return v
    }

    public func double(_ name: String) throws -> Double? {
        guard let s = string(name) else { return nil }
        guard let v = Double(s), v.isFinite else {
            throw UsageError("isfgan \(command): --\(name) expects a number, got '\(s)'")
        }
        return v
    }

    /// One of `choices`.
    public func choice(_ name: String, _ choices: [String]) throws -> String? {
        guard let s = string(name) else { return nil }
        guard choices.contains(s) else {
            throw UsageError(
                "isfgan \(command): --\(name) must be one of "
                    + "\(choices.joined(separator: ", ")), got '\(s)'"
            )
        }
        return s
    }
}

/// Help text generated from the option declarations.
public func helpText(command: String, summary: String, usage: String, specs: [OptionSpec])
    -> String
{
    var lines = ["isfgan \(command) — \(summary)", "", "usage: isfgan \(command) \(usage)", ""]
    if !specs.isEmpty { lines.append("options:") }
    let heads = specs.map { s -> String in
        switch s.kind {
        case .flag: return "  --\(s.name)"
        case .value(let p): return "  --\(s.name) \(p)"
        case .repeated(let p): return "  --\(s.name) \(p) (repeatable)"
        }
    }
    let width = min(34, (heads.map(\.count).max() ?? 0) + 2)
    for (s, head) in zip(specs, heads) {
        var text = s.help
        if let d = s.defaultValue { text += " (default: \(d))" }
        let pad =
            head.count < width
            ? String(repeating: " ", count: width - head.count)
            : "\n" + String(repeating: " ", count: width)
        lines.append(head + pad + text)
    }
    return lines.joined(separator: "\n")
}
