import Formats
import Foundation
import TensorCore

extension ISFNetwork {
    /// The key of the ISF in the authors' checkpoints (`torch.save({'mapnet': …,
    /// 'discriminator': …}, 'NNNNNN_nets_ema.ckpt')`).
    public static let checkpointKey = "mapnet"

    /// Reads an official ISF checkpoint (`NNNNNN_nets_ema.ckpt` or its `_nets.ckpt` twin):
    /// the state dict under `mapnet`, or a file that holds the bare state dict.
    ///
    /// The settings come from the keys (see
    /// ``ISFConfig/infer(from:source:randomWidth:residual:latentType:)``),
    /// except the two the keys cannot show: `randomWidth` (64 in the official runs) and
    /// `residual` (the run's `--use_residual`, off by default).
    ///
    /// - Throws: `FormatError` for a file that is not a PyTorch checkpoint, `ModelError`
    ///   for one without an ISF, `StateDictError` for keys or shapes that do not fit.
    public static func load(
        checkpoint url: URL, randomWidth: Int = ISFConfig.officialRandomWidth,
        residual: Bool = false, latentType: ISFLatentType? = nil
    ) throws -> ISFNetwork {
        let file = try TorchCheckpoint(contentsOf: url)
        let state: StateDict
        var source = url.path
        if file.root[checkpointKey] != nil {
            state = try file.stateDict(checkpointKey)
            source += " [\(checkpointKey)]"
        } else if file.root["w_net.z_net.shared.0.weight"] != nil {
            state = try file.stateDict()
        } else {
            let keys = file.root.dict?.stringKeys.prefix(8).joined(separator: ", ") ?? ""
            throw ModelError.notRecognised(
                url.path,
                "no '\(checkpointKey)' entry and no ISF keys: not an ISF checkpoint "
                    + "(top-level \(file.root.kindName)\(keys.isEmpty ? "" : " with keys \(keys)"))"
            )
        }
        return try load(
            state.tensors, source: source, randomWidth: randomWidth, residual: residual,
            latentType: latentType)
    }
}
