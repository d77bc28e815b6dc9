import Formats
import Foundation
import Models
import TensorCore

// The linear baseline (InterFaceGAN, Shen et al. 2020): one hyperplane per attribute in
// the generator's code space, fitted to labelled codes; an edit moves a code along the
// plane's unit normal. Codes of any shape [L, C] are flattened to L·C numbers.

/// A linear-baseline request that cannot be carried out (data, file or shapes).
public struct LinearBaselineError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Settings of the logistic-regression fit.
public struct LinearFitOptions: Codable, Sendable, Equatable {
    /// L2 penalty on the normal (keeps the fit finite on separable data).
    public var l2: Double = 1e-4
    /// Full-batch gradient steps (Nesterov momentum, step 1/L from the data's Lipschitz
    /// bound).
    public var iterations = 500
    /// Weight each class by N / (2·N_class), so that a rare label (few old faces) moves the
    /// boundary as much as a common one instead of being outvoted.
    public var balanced = true
    /// Replace each normal by its component orthogonal to the other attributes' normals
    /// (InterFaceGAN's conditional manipulation), so moving along one leaves the other
    /// boundaries' signed distances unchanged.
    public var conditional = false

    public init() {}
}

/// One fitted hyperplane per attribute: `d_a(x) = n_a · x + b_a` is the signed distance of
/// the flattened code x to attribute a's boundary (|n_a| = 1; positive: the side labelled 1).
public struct LinearBoundaries {
    public static let formatName = "isfgan-linear"
    public static let formatVersion = 1

    public var attributes: [String]
    /// Code shape [L, C] the boundaries live in.
    public var codeShape: [Int]
    /// Unit normals [A, L·C].
    public var normals: Tensor
    /// Offsets b_a [A].
    public var offsets: [Float]
    /// Edit directions [A, L·C] when they differ from the normals (the conditional fit).
    public var directions: Tensor?
    /// Balanced training accuracy per attribute: the mean over the two classes of the share
    /// of codes on their label's side (0.5 is chance whatever the class balance).
    public var trainingAccuracy: [Double]
    /// SHA-256 of the generator whose codes were fitted, when known.
    public var generatorSHA256: String?
    public var options: LinearFitOptions
    /// Training samples used.
    public var samples: Int

    var width: Int { codeShape.reduce(1, *) }

    /// The directions an edit moves along: the conditional ones when fitted, else the
    /// normals. [A, L·C]
    public var editDirections: Tensor { directions ?? normals }

    /// Signed distances [N, A] of codes [N, L, C].
    public func signedDistances(_ codes: Tensor) -> Tensor {
        let n = codes.shape[0]
        let x = codes.reshaped([n, width]).contiguous()  // [N, D]
        let d = x.matmul(normals.transposed(0, 1).contiguous())  // [N, A]
        return d + Tensor(shape: [1, offsets.count], offsets)
    }

    /// Labels [N, A] (0 or 1) the boundaries give codes [N, L, C]: 1 on the positive side.
    public func classify(_ codes: Tensor) -> [[Int]] {
        let a = attributes.count
        let d = signedDistances(codes).scalars
        return (0..<codes.shape[0]).map { i in (0..<a).map { d[i * a + $0] > 0 ? 1 : 0 } }
    }

    /// The edit: `x' = x + σ·s·u_a`, σ = +1 for a target value 1 and −1 for 0, u_a the
    /// unit edit direction of attribute a and s the strength. With codes drawn from
    /// N(0, I) the signed distance of a code to a boundary is about standard normal across
    /// codes, so s is a step in standard deviations of that spread (InterFaceGAN edits in
    /// [−3, 3]). Every code moves by the same s, wherever it starts.
    ///
    /// - Parameters: codes [N, L, C]; values: the target value of attribute a per code.
    /// - Returns: edited codes [N, L, C].
    public func edit(codes: Tensor, attribute a: Int, values: [Int], strength: Float) -> Tensor {
        let n = codes.shape[0]
        precondition(values.count == n, "LinearBoundaries.edit: one value per code")
        precondition(
            Array(codes.shape.dropFirst()) == codeShape,
            "LinearBoundaries.edit: codes \(describe(codes.shape)), boundaries for \(codeShape)")
        let u = editDirections.slice(0, a..<(a + 1)).contiguous()  // [1, D]
        let steps = Tensor(shape: [n, 1], values.map { ($0 == 1 ? 1 : -1) * strength })
        let x = codes.reshaped([n, width])  // [N, D]
        return (x + steps * u).reshaped(codes.shape).contiguous()
    }

    // MARK: Fitting

    /// Fits one boundary per attribute to codes [N, L, C] and labels [N, A] (0 or 1).
    ///
    /// - Throws: `LinearBaselineError` when an attribute has only one class.
    public static func fit(
        codes: Tensor, labels: Tensor, attributes: [String], options: LinearFitOptions = .init(),
        generatorSHA256: String? = nil, progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> LinearBoundaries {
        let n = codes.shape[0]
        let shape = Array(codes.shape.dropFirst())
        let d = shape.reduce(1, *)
        precondition(labels.shape == [n, attributes.count], "fit: labels do not match")
        let x = codes.reshaped([n, d]).contiguous()  // [N, D]
        let xt = x.transposed(0, 1).contiguous()  // [D, N]
        let y = labels.scalars
        var normals: [Float] = [], offsets: [Float] = [], accuracy: [Double] = []
        for (k, name) in attributes.enumerated() {
            progress(k, attributes.count)
            let column = (0..<n).map { Double(y[$0 * attributes.count + k] == 1 ? 1 : 0) }
            let positives = column.reduce(0, +)
            guard positives > 0, positives < Double(n) else {
                throw LinearBaselineError(
                    "linear baseline: attribute '\(name)' has only one class in the \(n) "
                        + "training codes; a boundary needs both")
            }
            let (w, b) = LogisticRegression.fit(x: x, xt: xt, y: column, options: options)
            let norm = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 0 else {
                throw LinearBaselineError(
                    "linear baseline: the fit for '\(name)' gave a zero normal (the codes do "
                        + "not predict the label at all)")
            }
            normals += w.map { Float($0 / norm) }
            offsets.append(Float(b / norm))
            let scores = x.matmul(Tensor(shape: [d, 1], w.map(Float.init))).scalars
            var right = [0.0, 0.0]
            for i in 0..<n where (Double(scores[i]) + b > 0 ? 1.0 : 0.0) == column[i] {
                right[Int(column[i])] += 1
            }
            accuracy.append((right[1] / positives + right[0] / (Double(n) - positives)) / 2)
        }
        progress(attributes.count, attributes.count)
        var result = LinearBoundaries(
            attributes: attributes, codeShape: shape,
            normals: Tensor(shape: [attributes.count, d], normals), offsets: offsets,
            directions: nil, trainingAccuracy: accuracy, generatorSHA256: generatorSHA256,
            options: options, samples: n)
        if options.conditional { result.directions = conditionalDirections(result.normals) }
        return result
    }

    /// For each normal, its component orthogonal to the span of the others, made unit
    /// (Gram–Schmidt over the others); a normal inside that span keeps itself.
    static func conditionalDirections(_ normals: Tensor) -> Tensor {
        let a = normals.shape[0], d = normals.shape[1]
        let rows = (0..<a).map { i in normals.slice(0, i..<(i + 1)).scalars.map(Double.init) }
        func dot(_ u: [Double], _ v: [Double]) -> Double {
            var s = 0.0
            for i in u.indices { s += u[i] * v[i] }
            return s
        }
        var out: [Float] = []
        for k in 0..<a {
            var basis: [[Double]] = []
            for j in 0..<a where j != k {
                var v = rows[j]
                for e in basis {
                    let c = dot(v, e)
                    for i in 0..<d { v[i] -= c * e[i] }
                }
                let len = dot(v, v).squareRoot()
                if len > 1e-9 { basis.append(v.map { $0 / len }) }
            }
            var u = rows[k]
            for e in basis {
                let c = dot(u, e)
                for i in 0..<d { u[i] -= c * e[i] }
            }
            let len = dot(u, u).squareRoot()
            out += (len > 1e-9 ? u.map { $0 / len } : rows[k]).map(Float.init)
        }
        return Tensor(shape: [a, d], out)
    }

    // MARK: Files

    enum Key {
        static let format = "format"
        static let version = "format_version"
        static let attributes = "attributes"
        static let codeShape = "code_shape"
        static let generator = "generator_sha256"
        static let accuracy = "training_accuracy"
        static let fit = "fit"
        static let samples = "samples"
    }

    /// Writes `normals` [A, D], `offsets` [A] and, for a conditional fit, `directions`
    /// [A, D] as float32 safetensors, with the rest as JSON metadata; atomically.
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ v: T) throws -> String {
            String(decoding: try encoder.encode(v), as: UTF8.self)
        }
        var metadata: [String: String] = [
            Key.format: Self.formatName, Key.version: String(Self.formatVersion),
            Key.attributes: try json(attributes), Key.codeShape: try json(codeShape),
            Key.accuracy: try json(trainingAccuracy), Key.fit: try json(options),
            Key.samples: String(samples),
        ]
        if let generatorSHA256 { metadata[Key.generator] = generatorSHA256 }
        var tensors: [(key: String, tensor: Tensor)] = [
            ("normals", normals), ("offsets", Tensor(shape: [offsets.count], offsets)),
        ]
        if let directions { tensors.append(("directions", directions)) }
        try Safetensors.write(tensors, metadata: metadata, to: url)
    }

    /// Reads a file ``write(to:)`` wrote.
    ///
    /// - Throws: `FormatError` for a file that is not safetensors; `LinearBaselineError`
    ///   naming the file and the entry that is missing or does not fit.
    public static func read(_ url: URL) throws -> LinearBoundaries {
        let file = try SafetensorsFile(contentsOf: url)
        let meta = file.metadata
        func fail(_ why: String) -> LinearBaselineError {
            LinearBaselineError("\(url.path): \(why)")
        }
        guard meta[Key.format] == formatName else {
            throw fail(
                "metadata '\(Key.format)' is \(meta[Key.format] ?? "missing"), expected "
                    + "'\(formatName)': not a linear baseline file (isfgan baseline fit)")
        }
        guard let version = meta[Key.version].flatMap(Int.init), version <= formatVersion else {
            throw fail("metadata '\(Key.version)' is missing or newer than this isfgan reads")
        }
        func decode<T: Decodable>(_ key: String, _ type: T.Type) throws -> T {
            guard let text = meta[key],
                let v = try? JSONDecoder().decode(T.self, from: Data(text.utf8))
            else { throw fail("metadata '\(key)' is missing or malformed") }
            return v
        }
        let attributes = try decode(Key.attributes, [String].self)
        let shape = try decode(Key.codeShape, [Int].self)
        let d = shape.reduce(1, *)
        guard let normalsEntry = file.entry("normals"), let offsetsEntry = file.entry("offsets")
        else { throw fail("tensors 'normals' and 'offsets' are required") }
        let normals = try file.tensor(normalsEntry.name)
        let offsets = try file.tensor(offsetsEntry.name)
        guard normals.shape == [attributes.count, d], offsets.shape == [attributes.count] else {
            throw fail(
                "normals \(describe(normals.shape)) and offsets \(describe(offsets.shape)) "
                    + "do not fit \(attributes.count) attributes of codes \(shape)")
        }
        var directions: Tensor?
        if file.entry("directions") != nil {
            let t = try file.tensor("directions")
            guard t.shape == normals.shape else {
                throw fail("directions \(describe(t.shape)) differ from the normals' shape")
            }
            directions = t
        }
        return LinearBoundaries(
            attributes: attributes, codeShape: shape, normals: normals,
            offsets: offsets.scalars, directions: directions,
            trainingAccuracy: (try? decode(Key.accuracy, [Double].self)) ?? [],
            generatorSHA256: meta[Key.generator],
            options: (try? decode(Key.fit, LinearFitOptions.self)) ?? LinearFitOptions(),
            samples: meta[Key.samples].flatMap(Int.init) ?? 0)
    }
}

/// L2-regularised logistic regression by accelerated full-batch gradient descent:
///
/// ```
/// loss(w, b) = mean_i c_i·softplus(−s_i (x_i·w + b)) + λ/2·|w|²,   s_i = 2y_i − 1
/// c_i = N / (2·N_{y_i}) when balanced, else 1
/// step 1/L,  L = max c · λ_max([X 1]ᵀ[X 1] / N) / 4 + λ   (λ_max by power iteration)
/// ```
///
/// Deterministic: fixed start (zeros), fixed iteration count, no sampling.
enum LogisticRegression {
    /// Fits w [D] and b to x [N, D] (and its transpose [D, N]) and labels y (0 or 1).
    static func fit(x: Tensor, xt: Tensor, y: [Double], options: LinearFitOptions) -> (
        w: [Double], b: Double
    ) {
        let n = x.shape[0], d = x.shape[1]
        let lambda = options.l2
        let positives = y.reduce(0, +)
        let weights = y.map { label -> Double in
            guard options.balanced else { return 1 }
            return Double(n) / (2 * (label == 1 ? positives : Double(n) - positives))
        }
        func scores(_ w: [Double], _ b: Double) -> [Double] {
            let s = x.matmul(Tensor(shape: [d, 1], w.map(Float.init))).scalars
            return s.map { Double($0) + b }
        }
        func xtv(_ v: [Double]) -> [Double] {
            xt.matmul(Tensor(shape: [n, 1], v.map(Float.init))).scalars.map(Double.init)
        }
        // Largest eigenvalue of [X 1]ᵀ[X 1]/N by power iteration from all ones.
        var v = [Double](repeating: 1, count: d + 1)
        var top = 1.0
        for _ in 0..<30 {
            let len = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            v = v.map { $0 / len }
            let xv = scores(Array(v[0..<d]), v[d])
            let back = xtv(xv)
            v = back.map { $0 / Double(n) } + [xv.reduce(0, +) / Double(n)]
            top = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        }
        let step = 1 / ((weights.max() ?? 1) * top / 4 + lambda)

        var w = [Double](repeating: 0, count: d), b = 0.0
        var previousW = w, previousB = b
        for k in 0..<options.iterations {
            let momentum = Double(k) / Double(k + 3)
            let lw = (0..<d).map { w[$0] + momentum * (w[$0] - previousW[$0]) }
            let lb = b + momentum * (b - previousB)
            let s = scores(lw, lb)
            let r = (0..<n).map { i -> Double in
                weights[i] * (1 / (1 + Foundation.exp(-s[i])) - y[i]) / Double(n)
            }
            let g = xtv(r)
            previousW = w
            previousB = b
            w = (0..<d).map { lw[$0] - step * (g[$0] + lambda * lw[$0]) }
            b = lb - step * r.reduce(0, +)
        }
        return (w, b)
    }
}
