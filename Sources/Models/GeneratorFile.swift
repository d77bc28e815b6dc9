import Formats
import Foundation
import TensorCore

/// Loading a StyleGAN2 generator from the files people have: rosinality checkpoints
/// (`g_ema`, `g`, with `latent_avg`) and bare state dicts.
public enum GeneratorFile {
    /// Reads `url` and builds the generator under `key` (default `g_ema`; a file that is
    /// itself a generator state dict is read from its top level when `key` is nil and it
    /// has no `g_ema`). Warnings (rebuilt buffers) go to `warn`.
    public static func loadStyleGAN2(
        _ url: URL, key: String? = nil, warn: (String) -> Void = { _ in }
    ) throws -> StyleGAN2Generator {
        let file = try TorchCheckpoint(contentsOf: url)
        let name = url.lastPathComponent
        let top = file.root.dict
        let entry: String?
        if let key {
            entry = key
        } else if top?["g_ema"] != nil {
            entry = "g_ema"
        } else if top?["input.input"] != nil {
            entry = nil
        } else {
            let have = top?.stringKeys.prefix(12).joined(separator: ", ") ?? file.root.kindName
            throw ModelError.notRecognised(
                name,
                "no 'g_ema' entry and not a generator state dict (top level: \(have)); "
                    + "pick the entry with --key")
        }
        let state = try entry.map { try file.stateDict($0) } ?? file.stateDict()
        var average: Tensor?
        if case .tensor(let t)? = top?["latent_avg"] { average = t.tensor }
        let (g, warnings) = try StyleGAN2Generator.load(
            state.tensors, latentAverage: average,
            source: entry.map { "\(name) entry '\($0)'" } ?? name)
        warnings.forEach(warn)
        return g
    }
}
