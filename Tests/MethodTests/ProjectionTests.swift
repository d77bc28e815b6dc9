import Formats
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

@testable import Method

/// PNG bytes written by hand (stored deflate blocks), so that tests can make the 16-bit
/// and gray files that `ImageIO` reads but does not write.
enum HandPNG {
    static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func be32(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc32(body))
    }

    /// A zlib stream of stored blocks.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var start = 0
        repeat {
            let n = min(65_535, data.count - start)
            let last: UInt8 = start + n == data.count ? 1 : 0
            out += [last, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8(~n >> 8 & 0xFF)]
            out += data[start..<(start + n)]
            start += n
        } while start < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for x in data {
            a = (a + UInt32(x)) % 65_521
            b = (b + a) % 65_521
        }
        return out + be32(b << 16 | a)
    }

    /// A PNG of `samples` (row-major, channels interleaved; 0 = gray, 2 = RGB colour
    /// types) at 8 or 16 bits.
    static func make(width: Int, height: Int, gray: Bool, bits: Int, samples: [Int]) -> [UInt8] {
        let channels = gray ? 1 : 3
        precondition(samples.count == width * height * channels)
        var raw: [UInt8] = []
        for y in 0..<height {
            raw.append(0)  // filter: none
            for v in samples[(y * width * channels)..<((y + 1) * width * channels)] {
                raw += bits == 16 ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v)]
            }
        }
        let header =
            be32(UInt32(width)) + be32(UInt32(height)) + [UInt8(bits), gray ? 0 : 2, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header)
            + chunk("IDAT", zlibStored(raw)) + chunk("IEND", [])
    }
}

final class ProjectionTests: XCTestCase {
    // MARK: Noise regulariser

    /// R(n) in Double with plain loops: the reference the op and its gradient are
    /// checked against.
    static func referencePenalty(_ maps: [[Double]], sides: [Int]) -> Double {
        var total = 0.0
        for (values, side) in zip(maps, sides) {
            var n = values, s = side
            while true {
                var x = 0.0, y = 0.0
                for r in 0..<s {
                    for c in 0..<s {
                        x += n[r * s + c] * n[r * s + (c + s - 1) % s]
                        y += n[r * s + c] * n[((r + s - 1) % s) * s + c]
                    }
                }
                let count = Double(s * s)
                total += (x / count) * (x / count) + (y / count) * (y / count)
                if s <= 8 { break }
                let h = s / 2
                var pooled = [Double](repeating: 0, count: h * h)
                for r in 0..<h {
                    for c in 0..<h {
                        pooled[r * h + c] =
                            (n[2 * r * s + 2 * c] + n[2 * r * s + 2 * c + 1]
                                + n[(2 * r + 1) * s + 2 * c] + n[(2 * r + 1) * s + 2 * c + 1]) / 4
                    }
                }
                n = pooled
                s = h
            }
        }
        return total
    }

    func testNoiseRegularizerValueAndGradientMatchTheReference() {
        // Sides 16 (two scales: 16 and 8) and 4 (one), with a little structure added so
        // that the autocorrelations, and with them the gradient, are not all near zero.
        var rng = RandomGenerator(seed: 11)
        let a = rng.normal([1, 1, 16, 16]) + Tensor.arange(0, 256).reshaped([1, 1, 16, 16]) * 0.01
        let b = rng.normal([1, 1, 4, 4])
        let sides = [16, 4]
        let value = NoiseRegularizer.penalty([a, b]).item
        let expected = Self.referencePenalty(
            [a.scalars.map(Double.init), b.scalars.map(Double.init)], sides: sides)
        XCTAssertEqual(Double(value), expected, accuracy: 1e-6 * max(1, expected))
        XCTAssertGreaterThan(expected, 1e-3, "the test maps should have correlations")
        // Differenced in Double, so float32 rounding of the op is all that is left.
        checkGradients(
            [a, b], eps: 1e-4, atol: 1e-6, rtol: 1e-3,
            reference: { Self.referencePenalty($0, sides: sides) }
        ) { NoiseRegularizer.penalty($0) }
    }

    func testRollByOneMovesTheLastSliceFirst() {
        let x = Tensor.arange(0, 6).reshaped([1, 1, 2, 3])  // rows [0 1 2], [3 4 5]
        XCTAssertEqual(x.rolled(by: 1, axis: 3).scalars, [2, 0, 1, 5, 3, 4])
        XCTAssertEqual(x.rolled(by: 1, axis: 2).scalars, [3, 4, 5, 0, 1, 2])
    }

    func testNormalizedMapsHaveZeroMeanAndUnitVariance() {
        var rng = RandomGenerator(seed: 3)
        let n = NoiseRegularizer.normalized(rng.normal([1, 1, 8, 8], mean: 2, std: 3))
        let v = n.scalars.map(Double.init)
        let mean = v.reduce(0, +) / Double(v.count)
        let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)
        XCTAssertEqual(mean, 0, accuracy: 1e-6)
        XCTAssertEqual(variance, 1, accuracy: 1e-5)
        // A constant map has nothing to scale: it is only centred (no division by zero).
        XCTAssertEqual(NoiseRegularizer.normalized(Tensor.full([1, 1, 4, 4], 5)).scalars.max(), 0)
    }

    // MARK: Schedule, PSNR

    func testScheduleFollowsTheReferenceFormulas() {
        var s = ProjectionSettings(space: .w)
        s.steps = 1000
        // Ramp-up over 5 %, flat, half cosine down over the last 25 %.
        XCTAssertEqual(s.learningRate(step: 0), 0)
        XCTAssertEqual(s.learningRate(step: 25), 0.05, accuracy: 1e-7)
        XCTAssertEqual(s.learningRate(step: 500), 0.1, accuracy: 1e-7)
        XCTAssertEqual(s.learningRate(step: 875), 0.05, accuracy: 1e-7)
        XCTAssertEqual(s.learningRate(step: 1000), 0, accuracy: 1e-7)
        // Exploration noise: spread · 0.05 · (1 − t / 0.75)², zero from 75 % on.
        XCTAssertEqual(s.codeNoise(step: 0, spread: 10), 0.5, accuracy: 1e-7)
        XCTAssertEqual(s.codeNoise(step: 375, spread: 10), 0.125, accuracy: 1e-7)
        XCTAssertEqual(s.codeNoise(step: 750, spread: 10), 0)
        XCTAssertEqual(s.codeNoise(step: 900, spread: 10), 0)
    }

    func testPSNROfAKnownDifference() {
        // 0.2 apart in [−1, 1] is 0.1 in [0, 1]: MSE 0.01, 20 dB.
        let a = Tensor.zeros([1, 3, 4, 4]), b = Tensor.full([1, 3, 4, 4], 0.2)
        XCTAssertEqual(peakSignalToNoiseRatio(a, b), 20, accuracy: 1e-4)
        XCTAssertEqual(peakSignalToNoiseRatio(a, a), .infinity)
        // The reconstruction is clamped as a saved image would be: 3 counts as 1.
        XCTAssertEqual(
            peakSignalToNoiseRatio(Tensor.full([1, 3, 2, 2], 3), Tensor.full([1, 3, 2, 2], 0.8)),
            20, accuracy: 1e-4)
    }

    // MARK: Photos

    func write(_ bytes: [UInt8], _ name: String) throws -> URL {
        let dir = temporaryDirectory("isfgan-photo")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// A 12 × 6 RGB photo whose centre 6 × 6 square is one colour and whose sides are
    /// another: cropping keeps only the centre, and the area filter averages 3 × 3 blocks.
    func testWidePhotoIsCentreCroppedAndAreaResized() throws {
        var samples: [Int] = []
        for _ in 0..<6 {
            for x in 0..<12 {
                samples += (3..<9).contains(x) ? [200, 100, 0] : [0, 255, 255]
            }
        }
        let url = try write(
            HandPNG.make(width: 12, height: 6, gray: false, bits: 8, samples: samples), "w.png")
        let photo = try ProjectionPhoto.load(url, side: 2)
        XCTAssertEqual(photo.tensor.shape, [1, 3, 2, 2])
        XCTAssertEqual([photo.width, photo.height, photo.channels], [12, 6, 3])
        XCTAssertEqual(
            photo.cropNote,
            "the photo is 12×6 and not square: only its centre 6×6 square is used (6 px cut "
                + "in all, split between the left and right); crop it to the face first to "
                + "choose the square")
        let expected: [Float] = [200, 100, 0].flatMap { Array(repeating: $0 / 127.5 - 1, count: 4) }
        assertClose(photo.tensor, Tensor(shape: [1, 3, 2, 2], expected), atol: 1e-6, rtol: 0)

        // A tall photo keeps its middle rows; a small one is enlarged.
        let tall = HandPNG.make(
            width: 2, height: 4, gray: false, bits: 8,
            samples: [0, 0, 0, 0, 0, 0] + Array(repeating: 255, count: 12) + [0, 0, 0, 0, 0, 0])
        let t = try ProjectionPhoto.load(try write(tall, "t.png"), side: 8)
        XCTAssertEqual(t.tensor.shape, [1, 3, 8, 8])
        XCTAssertEqual(t.tensor.scalars.min(), 1)
        XCTAssertTrue(t.cropNote?.contains("top and bottom") == true, "\(t.cropNote ?? "")")
    }

    func testGrayAndSixteenBitPhotosBecomeRGB() throws {
        // 8-bit gray: the one channel is repeated.
        let gray = try write(
            HandPNG.make(width: 2, height: 2, gray: true, bits: 8, samples: [0, 51, 102, 255]),
            "g.png")
        let g = try ProjectionPhoto.load(gray, side: 2)
        XCTAssertEqual(g.channels, 1)
        let plane: [Float] = [0, 51, 102, 255].map { $0 / 127.5 - 1 }
        assertClose(g.tensor, Tensor(shape: [1, 3, 2, 2], plane + plane + plane), atol: 1e-6)

        // 16-bit RGB and 16-bit gray: v·257 is the 16-bit form of the 8-bit value v.
        let values = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 250]
        let rgb16 = try write(
            HandPNG.make(
                width: 2, height: 2, gray: false, bits: 16, samples: values.map { $0 * 257 }),
            "c16.png")
        let c = try ProjectionPhoto.load(rgb16, side: 2)
        var planar = [Float](repeating: 0, count: 12)
        for i in 0..<4 {
            for k in 0..<3 { planar[k * 4 + i] = Float(values[i * 3 + k]) / 127.5 - 1 }
        }
        assertClose(c.tensor, Tensor(shape: [1, 3, 2, 2], planar), atol: 1e-6)

        let gray16 = try write(
            HandPNG.make(width: 3, height: 1, gray: true, bits: 16, samples: [0, 32_896, 65_535]),
            "g16.png")
        let h = try ProjectionPhoto.load(gray16, side: 1)  // the centre pixel: 128
        assertClose(h.tensor, Tensor.full([1, 3, 1, 1], 128 / 127.5 - 1), atol: 1e-6)
    }

    func testNonImageFileGetsAnErrorNamingIt() throws {
        let url = try write(Array("not a picture\n".utf8), "notes.png")
        XCTAssertThrowsError(try ProjectionPhoto.load(url, side: 8)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(url.path), text)
            XCTAssertTrue(text.contains("not a PNG or JPEG"), text)
        }
    }

    // MARK: Projection

    func tinyGenerator() throws -> StyleGAN2Generator {
        let url = try Fixtures.url("stylegan2-tiny/stylegan2-tiny.pt")
        return try XCTUnwrap(
            GeneratorLoader.load(kind: .stylegan2, url: url) as? StyleGAN2Generator)
    }

    func stlpips() throws -> STLPIPS {
        try STLPIPS.load(contentsOf: try ModelFiles.url("stlpips/alex_shift_tolerant.pth"))
    }

    func testSpaceMustFitTheGenerator() throws {
        let g = try tinyGenerator()
        XCTAssertEqual(ProjectionSpace.allowed(for: g), [.w, .wplus])
        XCTAssertEqual(ProjectionSpace.allowed(for: DCGANGenerator()), [.z])
        XCTAssertThrowsError(
            try Projector(
                generator: g, perceptual: STLPIPS(backbone: .alex),
                settings: ProjectionSettings(space: .z))
        ) { XCTAssertTrue("\($0)".contains("space z does not fit"), "\($0)") }
        var s = ProjectionSettings(space: .w)
        s.steps = 0
        XCTAssertThrowsError(
            try Projector(generator: g, perceptual: STLPIPS(backbone: .alex), settings: s))
    }

    func testCacheKeepsCodesAndNoiseUnderAKeyOfEveryInput() throws {
        let g = try tinyGenerator()
        let dir = temporaryDirectory("isfgan-cache")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let cache = ProjectionCache(directory: dir)
        let s = ProjectionSettings(space: .w)
        func key(_ s: ProjectionSettings, image: String = "aa", entry: String? = "g_ema") throws
            -> String
        {
            try ProjectionCache.key(
                imageSHA256: image, generatorSHA256: "bb", generatorKey: entry, settings: s)
        }
        let k = try key(s)
        var other = s
        other.steps = 999
        XCTAssertNotEqual(k, try key(other))
        XCTAssertNotEqual(k, try key(s, image: "ab"))
        XCTAssertNotEqual(k, try key(s, entry: nil))
        XCTAssertEqual(k, try key(s))
        XCTAssertNil(cache.lookup(k, generator: g))

        var rng = RandomGenerator(seed: 4)
        let code = rng.normal([1, 64])
        let noise = g.noiseShapes.map { rng.normal($0) }
        let result = ProjectionResult(
            code: code, codes: Projector.editingCodes(code, space: .w, generator: g),
            noise: noise, reconstruction: Tensor.zeros([1, 3, 32, 32]), distance: 0.125,
            psnr: 20, history: [0.5, 0.125], seconds: 1)
        let photo = ProjectionPhoto(
            tensor: Tensor.zeros([1, 3, 32, 32]), width: 40, height: 30, channels: 3,
            sha256: "aa")
        let record = ProjectionRecord(
            photo: photo, image: "photo.png", generator: "g.pt", generatorSHA256: "bb",
            generatorKey: "g_ema", generatorSummary: g.summary, settings: s, result: result,
            codeFile: "", noiseFile: nil)
        try cache.store(k, result: result, record: record)

        let entry = try XCTUnwrap(cache.lookup(k, generator: g))
        XCTAssertEqual(entry.codes.shape, [1, 8, 64])
        XCTAssertEqual(entry.codes.scalars, result.codes.scalars)
        XCTAssertEqual(entry.noise?.map(\.scalars), noise.map(\.scalars))
        XCTAssertEqual(entry.record.codeFile, k + ".npy")
        XCTAssertEqual(entry.record.noiseFile, k + ".npz")
        XCTAssertEqual(entry.record.perceptualDistance, 0.125)
        XCTAssertEqual(entry.record.imageSize, [40, 30])
        // A damaged entry is not used (the photo is projected again).
        try NumPy.write(Tensor.zeros([1, 3]), to: dir.appendingPathComponent(k + ".npy"))
        XCTAssertNil(cache.lookup(k, generator: g))
    }

    /// Projects an image the generator made itself from one of its own codes.
    func roundTrip(
        _ g: any ImageGenerator, space: ProjectionSpace, steps: Int, seed: UInt64
    ) throws -> (result: ProjectionResult, target: Tensor, start: Float) {
        // One thread: these small images make hundreds of short parallel loops per step,
        // whose fork and join cost more than they save when the cores are shared.
        let threads = Threads.count
        Threads.count = 1
        defer { Threads.count = threads }
        let p = try stlpips()
        var rng = RandomGenerator(seed: seed)
        let codes = g.sampleCodes(count: 1, generator: &rng)  // [1, L, D]
        let target = GradMode.withoutGradients { g.render(codes, noise: .constant) }
        var s = ProjectionSettings(space: space)
        s.steps = steps
        s.statisticsSamples = 2000
        let projector = try Projector(generator: g, perceptual: p, settings: s)
        let r = try projector.project(target)

        // What was reported is what the codes and noise maps render.
        let again = GradMode.withoutGradients { g.render(r.codes, noise: r.noiseMode) }
        XCTAssertEqual(maxAbsDifference(again, r.reconstruction), 0)
        let d = try GradMode.withoutGradients { try p.perceptualLoss(again, target).item }
        XCTAssertEqual(d, r.distance, accuracy: 1e-6)
        // The average code's image, where the run starts.
        let mean = projector.codeStatistics().mean
        let start = try GradMode.withoutGradients {
            let image = g.render(
                Projector.editingCodes(mean, space: space == .wplus ? .w : space, generator: g),
                noise: .constant)
            return try p.perceptualLoss(image, target).item
        }
        return (r, target, start)
    }

    /// The round trips' thresholds come from these runs (ST-LPIPS alex, 1 thread, default
    /// settings, so MSE weight 1 for the DCGAN; the distance of the average code's image in
    /// brackets):
    ///
    ///     tiny StyleGAN2, w, seed 21:      100 steps 0.0135, 200 steps 0.0100 (0.345)
    ///     tiny StyleGAN2, W+, seed 22:     100 steps 0.0088, 200 steps 0.0039 (0.256)
    ///     DCGAN, z, seed 31:               100 steps 0.064,  200 steps 0.042  (0.614)
    ///     DCGAN, z, seeds 32, 33:          200 steps 0.0030, 0.031           (0.757, 0.541)
    ///     DCGAN PSNR after 200 steps, seeds 31, 32, 33: 20.8, 27.6, 19.7 dB
    ///
    /// The tests take the first run of each with a margin of 2.4 to 3, and ask for the
    /// perceptual term to fall from the first tenth of the run to the middle tenth to the
    /// last (the exploration noise makes single steps go up and down).
    func testRoundTripOnTheTinyStyleGAN2() throws {
        let g = try tinyGenerator()
        for (space, seed) in [(ProjectionSpace.w, UInt64(21)), (.wplus, 22)] {
            let (r, _, start) = try roundTrip(g, space: space, steps: 100, seed: seed)
            XCTAssertEqual(r.code.shape, space == .w ? [1, 64] : [1, 8, 64])
            XCTAssertEqual(r.noise?.map(\.shape), g.noiseShapes)
            XCTAssertLessThan(r.distance, 0.04, "\(space)")
            XCTAssertLessThan(r.distance, start / 5, "\(space)")
            assertFallsOnAverage(r.history, "\(space)")
            // The optimised maps leave the run normalised.
            for m in r.noise ?? [] {
                XCTAssertEqual(m.mean().item, 0, accuracy: 1e-5)
                XCTAssertEqual(m.squared().mean().item, 1, accuracy: 1e-4)
            }
        }
    }

    func testRoundTripOnTheDCGAN() throws {
        let url = try ModelFiles.url("dcgan-face/weights.tar")
        let g = try DCGANGenerator.load(contentsOf: url)
        let (r, _, start) = try roundTrip(g, space: .z, steps: 200, seed: 31)
        XCTAssertEqual(r.code.shape, [1, 100])
        XCTAssertNil(r.noise)
        XCTAssertLessThan(r.distance, 0.1)
        XCTAssertLessThan(r.distance, start / 5)
        XCTAssertGreaterThan(r.psnr, 16)
        assertFallsOnAverage(r.history, "dcgan")
        // z stays on the sphere of radius √100.
        XCTAssertEqual(r.code.norm().item, 10, accuracy: 1e-3)
    }

    /// The mean of the first, middle and last tenth of a run fall in that order.
    func assertFallsOnAverage(
        _ history: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        let k = max(1, history.count / 10)
        func mean(_ part: ArraySlice<Float>) -> Float { part.reduce(0, +) / Float(part.count) }
        let mid = history.count / 2 - k / 2
        let (early, middle, late) = (
            mean(history.prefix(k)), mean(history[mid..<(mid + k)]), mean(history.suffix(k))
        )
        XCTAssertGreaterThan(early, middle, what, file: file, line: line)
        XCTAssertGreaterThan(middle, late, what, file: file, line: line)
    }
}
