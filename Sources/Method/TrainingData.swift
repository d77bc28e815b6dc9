import Formats
import Foundation
import Models
import TensorCore

// Training data in the official layout, read as the reference loader reads it:
//
//     ROOT/train/*.png                 images, sorted by file name
//     ROOT/train/wp.npy                codes, row i ↔ i-th image ([N, L, C] or [N, 1, L, C];
//                                      w.npy / z.npy for single-code generators)
//     ROOT/list_attr_celeba-train.txt  "N" / attribute names / "file v1 v2 …" (1 counts as 1)
//     ROOT/test/…, ROOT/list_attr_celeba-test.txt   the same for the held-out split

/// A mistake in a training data folder: names the file and what was expected.
public struct TrainingDataError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One split (`train` or `test`) of a training data folder.
public struct TrainingSplit {
    /// `train` or `test`.
    public let name: String
    /// The images, sorted by file name.
    public let imageFiles: [URL]
    /// Their codes, row i for image i: [N, L, C].
    public let codes: Tensor
    /// Their labels, row i for image i: [N, D], 0 or 1.
    public let labels: Tensor
    /// The attribute names of the label file's second line.
    public let attributeNames: [String]
    /// The code file that was read (wp.npy, w.npy or z.npy).
    public let codeFile: URL
    /// `SPLIT/soft_labels.npy` when the split has it: [N, D] in [0, 1], the classifiers'
    /// confidence behind each hard label (`isfgan dataset` writes it).
    public let softLabels: Tensor?

    public var count: Int { imageFiles.count }

    /// File names the official loader takes as images.
    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]
    /// Code files, in the order they are looked for.
    static let codeFileNames = ["wp.npy", "w.npy", "z.npy"]
    public static let softLabelFileName = "soft_labels.npy"

    /// Reads the split `name` of the data folder `root` (images are read later, per batch).
    ///
    /// - Throws: `TrainingDataError` for a missing folder or file, a count mismatch between
    ///   images, codes and labels, a label line that does not parse or names no image, and
    ///   codes that are not [N, L, C] / [N, 1, L, C]; `FormatError` from the npy reader.
    public static func read(root: URL, name: String) throws -> TrainingSplit {
        let fm = FileManager.default
        let folder = root.appendingPathComponent(name)
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw TrainingDataError(
                "training data: folder \(folder.path) is missing (expected ROOT/\(name)/ with "
                    + "the images and wp.npy)")
        }
        let names = try fm.contentsOfDirectory(atPath: folder.path)
            .filter { imageExtensions.contains(($0 as NSString).pathExtension.lowercased()) }
            .sorted()
        guard !names.isEmpty else {
            throw TrainingDataError("training data: \(folder.path) holds no .png or .jpg images")
        }
        let images = names.map { folder.appendingPathComponent($0) }

        guard
            let codeFile = codeFileNames.map({ folder.appendingPathComponent($0) })
                .first(where: { fm.fileExists(atPath: $0.path) })
        else {
            throw TrainingDataError(
                "training data: \(folder.path) has no code file (expected one of "
                    + codeFileNames.joined(separator: ", ") + ")")
        }
        var codes = try NumPy.readTensor(codeFile)
        if codes.rank == 4 && codes.shape[1] == 1 {
            codes = codes.reshaped([codes.shape[0], codes.shape[2], codes.shape[3]])
        } else if codes.rank == 2 {
            codes = codes.unsqueezed(1)  // [N, 1, C]: single-code generators
        }
        guard codes.rank == 3 else {
            throw TrainingDataError(
                "training data: \(codeFile.path) has shape \(describe(codes.shape)), expected "
                    + "[N, L, C] or [N, 1, L, C]")
        }
        guard codes.shape[0] == images.count else {
            throw TrainingDataError(
                "training data: \(codeFile.path) has \(codes.shape[0]) codes but "
                    + "\(folder.path) has \(images.count) images; row i must belong to the "
                    + "i-th image in name order")
        }

        let labelFile = root.appendingPathComponent("list_attr_celeba-\(name).txt")
        let (attributeNames, byFile) = try readLabelFile(labelFile)
        guard byFile.count == images.count else {
            throw TrainingDataError(
                "training data: \(labelFile.path) labels \(byFile.count) images but "
                    + "\(folder.path) has \(images.count)")
        }
        var labels: [Float] = []
        labels.reserveCapacity(images.count * attributeNames.count)
        for file in names {
            guard let row = byFile[file] else {
                throw TrainingDataError(
                    "training data: \(labelFile.path) has no line for image '\(file)'")
            }
            labels += row
        }
        var soft: Tensor?
        let softFile = folder.appendingPathComponent(softLabelFileName)
        if fm.fileExists(atPath: softFile.path) {
            let t = try NumPy.readTensor(softFile)
            let want = [images.count, attributeNames.count]
            guard t.shape == want, t.scalars.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {
                throw TrainingDataError(
                    "training data: \(softFile.path) has shape \(describe(t.shape)), expected "
                        + "\(describe(want)) (one row per image, one column per attribute) "
                        + "with values in [0, 1]")
            }
            soft = t.contiguous()
        }
        return TrainingSplit(
            name: name, imageFiles: images, codes: codes.contiguous(),
            labels: Tensor(shape: [images.count, attributeNames.count], labels),
            attributeNames: attributeNames, codeFile: codeFile, softLabels: soft)
    }

    /// Parses a CelebA-style attribute file: the count, the names, then `file v1 v2 …`
    /// per image, where only the value `1` counts as 1 (CelebA writes −1 for absent).
    ///
    /// - Throws: `TrainingDataError` naming the file and line that does not parse.
    public static func readLabelFile(_ url: URL) throws -> (
        names: [String], labels: [String: [Float]]
    ) {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TrainingDataError(
                "training data: label file \(url.path) is missing (first line the count, "
                    + "second the attribute names, then 'file v1 v2 …')")
        }
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw TrainingDataError("training data: cannot read \(url.path) as UTF-8 text")
        }
        let lines = text.split(whereSeparator: \.isNewline)
            .map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }
            .enumerated().filter { !$0.element.isEmpty }
        guard lines.count >= 2, lines[0].element.count == 1, let count = Int(lines[0].element[0])
        else {
            throw TrainingDataError(
                "training data: \(url.path): the first line must be the image count and the "
                    + "second the attribute names")
        }
        let names = lines[1].element
        var labels: [String: [Float]] = [:]
        for (number, fields) in lines.dropFirst(2) {
            guard fields.count == names.count + 1 else {
                throw TrainingDataError(
                    "training data: \(url.path) line \(number + 1) has \(fields.count - 1) "
                        + "values, expected \(names.count) (one per attribute)")
            }
            guard labels[fields[0]] == nil else {
                throw TrainingDataError(
                    "training data: \(url.path) line \(number + 1) labels '\(fields[0])' again")
            }
            labels[fields[0]] = fields.dropFirst().map { $0 == "1" ? 1 : 0 }
        }
        guard labels.count == count else {
            throw TrainingDataError(
                "training data: \(url.path) says \(count) images on its first line but has "
                    + "\(labels.count) label lines")
        }
        return (names, labels)
    }

    /// The images at `indices`, scaled to [−1, 1] and brought to `size` by area averaging
    /// (the reference resizes the stored images to the training size): [B, 3, S, S].
    ///
    /// - Throws: `FormatError` for an unreadable image, `TrainingDataError` for one that is
    ///   not RGB or not square.
    public func images(_ indices: [Int], size: Int) throws -> Tensor {
        var out: [Tensor] = []
        for i in indices {
            let url = imageFiles[i]
            let image = try ImageIO.read(url)
            guard image.width == image.height, image.channels == 3 || image.channels == 4
            else {
                throw TrainingDataError(
                    "training data: \(url.path) is \(image.width)×\(image.height) with "
                        + "\(image.channels) channels, expected a square RGB image")
            }
            var x = image.tensor()  // [1, C, H, W]
            if image.channels == 4 { x = x.slice(1, 0..<3) }
            if image.width != size { x = x.resizedArea(height: size, width: size) }
            out.append(x.contiguous())
        }
        return Tensor.concat(out, axis: 0)  // [B, 3, S, S]
    }

    /// The codes at `indices`: [B, L, C].
    public func codes(_ indices: [Int]) -> Tensor {
        codes.indexSelect(indices).contiguous()
    }

    /// The labels at `indices`: [B, D].
    public func labels(_ indices: [Int]) -> Tensor {
        labels.indexSelect(indices).contiguous()
    }

    /// Rows of `softLabels`, or nil when the split has none.
    public func softLabelRows(_ indices: [Int]) -> Tensor? {
        softLabels?.indexSelect(indices).contiguous()
    }
}

/// A training data folder: the train split and, when present, the test split.
public struct TrainingDataset {
    public let root: URL
    public let train: TrainingSplit
    public let test: TrainingSplit?

    public var attributeNames: [String] { train.attributeNames }

    /// Reads `ROOT/train` (required) and `ROOT/test` (optional).
    ///
    /// - Throws: `TrainingDataError` as ``TrainingSplit/read(root:name:)`` does, and when
    ///   the two splits name different attributes or have codes of different shapes.
    public static func read(_ root: URL) throws -> TrainingDataset {
        let train = try TrainingSplit.read(root: root, name: "train")
        var test: TrainingSplit?
        if FileManager.default.fileExists(atPath: root.appendingPathComponent("test").path) {
            let t = try TrainingSplit.read(root: root, name: "test")
            guard t.attributeNames == train.attributeNames else {
                throw TrainingDataError(
                    "training data: the test labels name \(t.attributeNames), the train labels "
                        + "\(train.attributeNames)")
            }
            guard Array(t.codes.shape.dropFirst()) == Array(train.codes.shape.dropFirst()) else {
                throw TrainingDataError(
                    "training data: test codes are \(describe(t.codes.shape)), train codes "
                        + "\(describe(train.codes.shape))")
            }
            test = t
        }
        return TrainingDataset(root: root, train: train, test: test)
    }

    /// Checks the codes against the generator's `[L, C]`.
    ///
    /// - Throws: `TrainingDataError` naming the code file and both shapes.
    public func check(generator: ImageGenerator) throws {
        for split in [train] + (test.map { [$0] } ?? []) {
            let shape = Array(split.codes.shape.dropFirst())
            guard shape == [generator.codeLayers, generator.codeWidth] else {
                throw TrainingDataError(
                    "training data: \(split.codeFile.path) holds codes of "
                        + "\(describe(shape)), the generator takes "
                        + "\(describe([generator.codeLayers, generator.codeWidth])) "
                        + "(\(generator.summary))")
            }
        }
    }
}

/// The seeded batch sampler: source samples go through the training set in a fresh random
/// order each epoch (as a shuffled loader does); each target is the label vector of another
/// random training sample (the official code's reference loader).
///
/// Its whole state is ``State``, so a resumed run draws the same batches.
public struct BatchSampler {
    public struct State: Codable, Equatable, Sendable {
        public var seed: UInt64
        public var epoch: Int
        /// Samples of this epoch's order already used.
        public var offset: Int
        /// The generator of the target draws.
        public var targets: RandomGenerator
    }

    public private(set) var state: State
    public let count: Int
    private var order: [Int]

    public init(count: Int, seed: UInt64) {
        precondition(count > 0, "BatchSampler: no samples")
        self.count = count
        state = State(
            seed: seed, epoch: 0, offset: 0,
            targets: RandomGenerator(seed: seed &+ 0x7461_7267_6574))  // "target"
        order = BatchSampler.order(count: count, seed: seed, epoch: 0)
    }

    public init(count: Int, restoring state: State) {
        self.count = count
        self.state = state
        order = BatchSampler.order(count: count, seed: state.seed, epoch: state.epoch)
    }

    static func order(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var g = RandomGenerator(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        return g.permutation(count)
    }

    /// The next batch: source indices and the indices whose labels become the targets.
    public mutating func next(_ batch: Int) -> (sources: [Int], targets: [Int]) {
        var sources: [Int] = []
        while sources.count < batch {
            if state.offset == count {
                state.epoch += 1
                state.offset = 0
                order = BatchSampler.order(count: count, seed: state.seed, epoch: state.epoch)
            }
            sources.append(order[state.offset])
            state.offset += 1
        }
        let targets = (0..<batch).map { _ in state.targets.int(below: count) }
        return (sources, targets)
    }
}
