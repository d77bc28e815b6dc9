import Formats
import Foundation

/// `isfgan inspect FILE`
struct InspectCommand: Subcommand {
    static let name = "inspect"
    static let summary = "list what a checkpoint, safetensors, npy or npz file holds"
    static let usage = "FILE [--json]"
    static let positionalCount = 1
    static let options: [OptionSpec] = [
        .flag("json", "print machine-readable JSON instead of text")
    ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        guard let path = args.positional.first else {
            throw UsageError("isfgan inspect: give the file to inspect")
        }
        let summary = try Inspector.inspect(URL(fileURLWithPath: path))
        console.out(args.flag("json") ? summary.json() : summary.text)
    }
}
