import Foundation
import Method

/// `isfgan export --format torch RUN|CHECKPOINT`: the official checkpoint layout.
struct ExportCommand: Subcommand {
    static let name = "export"
    static let summary =
        "write a training run or checkpoint as official PyTorch checkpoints or an ISF file"
    static let usage = """
        --format torch RUN_FOLDER | CHECKPOINT.safetensors | ISF.safetensors [--out DIR]
               --format isf RUN_FOLDER | CHECKPOINT.safetensors [--out ISF.safetensors]

        torch: writes NNNNNN_nets_ema.ckpt (averaged ISF under 'mapnet', the discriminator
        under 'discriminator') and NNNNNN_nets.ckpt (the live ISF) for a training checkpoint
        or a run folder's last one; only the _nets_ema file (mapnet alone) for an ISF file.
        isf: writes the checkpoint's averaged ISF as an isfgan ISF file (what a finished run
        leaves as final.safetensors), for a run stopped early; default OUT is
        RUN/isf-step-NNNNNN.safetensors.
        """
    static let positionalCount = 1
    static let options: [OptionSpec] = [
        .value("format", "NAME", "output format: torch or isf", default: "torch"),
        .value(
            "out", "PATH",
            "torch: output folder (default: RUN/export, or the input's folder); isf: the file"),
    ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let format = try args.choice("format", ["torch", "isf"])!
        guard let path = args.positional.first else {
            throw UsageError("isfgan export: give a run folder or a .safetensors checkpoint")
        }
        let input = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input.path, isDirectory: &isDir) else {
            throw UsageError("isfgan export: \(path) does not exist")
        }
        if format == "isf" {
            let (step, url) = try TrainingExport.isf(
                from: input, to: args.string("out").map { URL(fileURLWithPath: $0) })
            console.err("exported the averaged ISF of step \(step)")
            console.out(url.path)
            return
        }
        let out =
            args.string("out").map { URL(fileURLWithPath: $0) }
            ?? (isDir.boolValue
                ? input.appendingPathComponent("export") : input.deletingLastPathComponent())
        for url in try TrainingExport.torch(from: input, to: out) {
            console.out(url.path)
        }
        let flags = try TrainingExport.officialLoadFlags(from: input)
        if !flags.isEmpty {
            console.err(
                "the official files cannot record these settings: load them with "
                    + "`isfgan edit --isf FILE \(flags) …`")
        }
    }
}
