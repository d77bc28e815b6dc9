import TensorCore

/// The noise-map regulariser of the StyleGAN2 projector: it keeps optimised noise maps
/// from turning into a second image channel that carries the photo's content.
///
/// For each map n [1, 1, H, W] and each scale of its pyramid (halved by 2×2 averaging
/// while the side is above `coarsestSide`), it penalises the squared autocorrelation at a
/// shift of one pixel, horizontally and vertically, with wrap-around:
///
///     R(n) = Σ_scales  mean(n · roll_x(n))² + mean(n · roll_y(n))²
///
/// Independent unit-variance noise has both means near zero; structure that spans pixels
/// does not. `normalized(_:)` is the second half of the scheme: after every optimiser step
/// each map is brought back to zero mean and unit variance.
public enum NoiseRegularizer {
    /// The pyramid stops at this side (the reference's 8 px).
    public static let coarsestSide = 8

    /// R summed over `maps` (each [1, 1, H, W], square): one element, differentiable.
    public static func penalty(_ maps: [Tensor]) -> Tensor {
        var total: Tensor?
        for map in maps {
            precondition(
                map.rank == 4 && map.shape[0] == 1 && map.shape[1] == 1
                    && map.shape[2] == map.shape[3],
                "NoiseRegularizer: map \(describe(map.shape)), want [1, 1, S, S]")
            var n = map
            while true {
                let x = (n * n.rolled(by: 1, axis: 3)).mean()
                let y = (n * n.rolled(by: 1, axis: 2)).mean()
                let term = x.squared() + y.squared()
                total = total.map { $0 + term } ?? term
                if n.shape[2] <= coarsestSide || n.shape[2] % 2 != 0 { break }
                n = n.avgPool2d(kernelSize: 2)
            }
        }
        return total ?? Tensor.zeros([])
    }

    /// The map shifted to zero mean and scaled to unit (population) variance; a constant
    /// map, which has no variance to scale, is only centred.
    public static func normalized(_ map: Tensor) -> Tensor {
        GradMode.withoutGradients {
            let centred = map - map.mean()
            let variance = centred.squared().mean().item
            return variance > 0 ? centred * (1 / variance.squareRoot()) : centred
        }
    }
}
