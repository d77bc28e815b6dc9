import Formats
import Foundation
import TensorCore

/// A subcommand of `isfgan`: its declaration (for parsing and help) and its body.
public protocol Subcommand {
    static var name: String { get }
    static var summary: String { get }
    static var usage: String { get }
    static var options: [OptionSpec] { get }
    /// Positional arguments accepted (most commands take none).
    static var positionalCount: Int { get }
    static func run(_ arguments: ParsedArguments, _ console: Console) throws
}

extension Subcommand {
    public static var positionalCount: Int { 0 }
}

/// Where commands print: results to standard output, messages to standard error.
public final class Console {
    public var out: (String) -> Void
    public var err: (String) -> Void
    /// True when standard error is a terminal (live progress lines instead of plain lines).
    public let isTerminal: Bool

    public init(
        out: @escaping (String) -> Void = { print($0) },
        err: @escaping (String) -> Void = {
            FileHandle.standardError.write(Data(($0 + "\n").utf8))
        },
        isTerminal: Bool = isatty(2) != 0
    ) {
        self.out = out
        self.err = err
        self.isTerminal = isTerminal
    }

    public func warn(_ message: String) { err("warning: \(message)") }
}

public enum CLI {
    /// Every subcommand, in the order `isfgan --help` lists them.
    nonisolated(unsafe) public static var commands: [Subcommand.Type] = [
        DemoCommand.self,
        GenerateCommand.self,
        InspectCommand.self,
        BenchCommand.self,
        EditCommand.self,
        InvertCommand.self,
        InterpolateCommand.self,
        SampleCommand.self,
        DatasetCommand.self,
        TrainCommand.self,
        EvalCommand.self,
        BaselineCommand.self,
        ExportCommand.self,
        VersionCommand.self,
    ]

    static let globalOptions: [OptionSpec] = [
        .value("threads", "N", "threads for kernels and oneDNN (also ISFGAN_THREADS)"),
        .flag("help", "show this help"),
    ]

    /// Runs `isfgan ARGS`; returns the process exit status (0 ok, 1 failure, 2 usage).
    public static func main(_ arguments: [String], console: Console = Console()) -> Int32 {
        if arguments.first == "--version" { return main(["version"], console: console) }
        // Global options may also come before the command: `isfgan --threads 1 edit …`.
        if arguments.first == "--threads", arguments.count >= 3 {
            return main(
                [arguments[2]] + arguments[0..<2] + arguments.dropFirst(3), console: console)
        }
        if let first = arguments.first, first.hasPrefix("--threads=") {
            let value = String(first.dropFirst("--threads=".count))
            return main(["--threads", value] + arguments.dropFirst(), console: console)
        }
        if arguments.first == "--threads" {
            console.err(
                "isfgan: error: --threads N goes before a command, as in "
                    + "'isfgan --threads 1 edit …'; see 'isfgan --help'")
            return 2
        }
        // `isfgan help edit` is `isfgan edit --help`.
        if arguments.first == "help", arguments.count == 2 {
            return main([arguments[1], "--help"], console: console)
        }
        guard let first = arguments.first, first != "--help", first != "-h", first != "help"
        else {
            console.out(overview())
            return 0
        }
        guard let command = commands.first(where: { $0.name == first }) else {
            console.err("isfgan: error: unknown command '\(first)'; see 'isfgan --help'")
            return 2
        }
        let specs = command.options + globalOptions
        let rest = Array(arguments.dropFirst())
        if rest.contains("--help") || rest.contains("-h") {
            console.out(
                helpText(
                    command: command.name, summary: command.summary, usage: command.usage,
                    specs: specs))
            return 0
        }
        do {
            let parsed = try ParsedArguments(
                command: command.name, specs: specs, arguments: rest,
                positional: command.positionalCount)
            if let n = try parsed.int("threads", range: 1...1024) { Threads.count = n }
            try command.run(parsed, console)
            return 0
        } catch let e as UsageError {
            // One format for every error: "isfgan CMD: error: what" (the messages carry
            // their own "isfgan CMD: " prefix, which moves in front of "error:").
            let prefix = "isfgan \(command.name): "
            let message =
                e.message.hasPrefix(prefix) ? String(e.message.dropFirst(prefix.count)) : e.message
            console.err("\(prefix)error: \(message)")
            return 2
        } catch let e as ExitStatus {
            return e.code
        } catch {
            console.err("isfgan \(command.name): error: \(describeError(error))")
            return 1
        }
    }

    /// A thrown error as one readable line. Foundation's file errors print as an
    /// `NSCocoaErrorDomain` dump; this keeps their path and their reason.
    public static func describeError(_ error: any Error) -> String {
        if error is DecodingError { return describeDecoding(error) }
        guard let cocoa = error as? CocoaError else { return "\(error)" }
        let path =
            (cocoa.userInfo[NSFilePathErrorKey] as? String) ?? cocoa.filePath ?? cocoa.url?.path
        let reason: String
        switch cocoa.code {
        case .fileWriteFileExists: reason = "a file with that name is in the way"
        case .fileNoSuchFile, .fileReadNoSuchFile: reason = "no such file or folder"
        case .fileReadNoPermission, .fileWriteNoPermission: reason = "permission denied"
        case .fileWriteOutOfSpace: reason = "the disk is full"
        case .fileWriteVolumeReadOnly: reason = "the file system is read-only"
        case .fileReadCorruptFile: reason = "the file is not in the expected format"
        default:
            if let path, let file = fileInTheWay(of: path) {
                // Foundation reports "unknown error 512" when a parent is a plain file.
                return "\(path): \(file) is a file, not a folder"
            }
            let underlying = (cocoa.userInfo[NSUnderlyingErrorKey] as? NSError)?
                .localizedDescription
            reason = underlying ?? "error \(cocoa.code.rawValue) (\(cocoa.localizedDescription))"
        }
        return path.map { "\($0): \(reason)" } ?? reason
    }

    /// The nearest existing ancestor of `path` when it is a plain file (nil otherwise).
    static func fileInTheWay(of path: String) -> String? {
        var ancestor = URL(fileURLWithPath: path).deletingLastPathComponent()
        while ancestor.path != "/" && !ancestor.path.isEmpty {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: ancestor.path, isDirectory: &isFolder) {
                return isFolder.boolValue ? nil : ancestor.path
            }
            ancestor = ancestor.deletingLastPathComponent()
        }
        return nil
    }

    static func overview() -> String {
        var lines = [
            "isfgan — edit images through a StyleGAN2's latent space with an implicit style",
            "function (ISF-GAN), train it, and measure it; on the CPU, from PyTorch checkpoints.",
            "",
            "usage: isfgan COMMAND [options]      (isfgan COMMAND --help for its options)",
            "",
            "commands:",
        ]
        let width = (commands.map { $0.name.count }.max() ?? 0) + 4
        for c in commands {
            lines.append(
                "  " + c.name.padding(toLength: width, withPad: " ", startingAt: 0) + c.summary)
        }
        lines += ["", "global options: --threads N (default: all cores; env ISFGAN_THREADS)"]
        return lines.joined(separator: "\n")
    }
}

/// Ends a command that has already said why with another status than 0 (an interrupted
/// training run: 130, as a shell reports a process stopped by Ctrl-C).
struct ExitStatus: Error {
    let code: Int32
}

/// `isfgan version`
struct VersionCommand: Subcommand {
    static let name = "version"
    static let summary = "print the version and the thread count"
    static let usage = ""
    static let options: [OptionSpec] = []
    static let version = "0.1.0"

    static func run(_ arguments: ParsedArguments, _ console: Console) throws {
        console.out("isfgan \(version) (threads: \(Threads.count))")
    }
}
