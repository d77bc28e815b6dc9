import Foundation
import TensorCore

// What to edit: attribute names, source label vectors (given or read from a CelebA-style
// list), target vectors, and which W+ rows the edit may change.

/// A mistake in what the user asked an edit to do (names, labels, shapes, presets); the
/// message names the file or option and what was expected.
public struct EditError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// MARK: - Attribute names

/// The names of an ISF's attributes, in the order of its target vector.
///
/// What the value 1 of an attribute means is whatever the training labels meant (for the
/// official FFHQ models: male, wearing glasses, old, smiling); isfgan only keeps the names.
public struct AttributeNames: Equatable, Sendable {
    /// The names, one per attribute.
    public let names: [String]

    /// The official FFHQ order (stylegan-mmuit, `num_domains` = 4).
    public static let official = ["Gender", "Glasses", "Age", "Expression"]
    /// Other spellings accepted for the official names (CelebA's column names).
    public static let officialAliases: [String: String] = [
        "male": "Gender", "eyeglasses": "Glasses", "smile": "Expression",
        "smiling": "Expression",
    ]

    public init(_ names: [String]) { self.names = names }

    /// True when these are the official four, in the official order.
    public var isOfficial: Bool {
        names.map { $0.lowercased() } == Self.official.map { $0.lowercased() }
    }

    /// The names to use for an ISF with `count` attributes: `given` (from `--attributes`)
    /// first, then `recorded` (from the project's ISF file), then, for four attributes,
    /// the official order.
    ///
    /// - Throws: `EditError` when a list has the wrong length or repeats a name, or when
    ///   no names are known for a count other than four.
    public static func resolve(given: [String]?, recorded: [String]?, count: Int) throws
        -> AttributeNames
    {
        if let given {
            guard given.count == count else {
                throw EditError(
                    "--attributes names \(given.count) attribute\(given.count == 1 ? "" : "s") "
                        + "(\(given.joined(separator: ", "))), the ISF has \(count)")
            }
            let lowered = given.map { $0.lowercased() }
            guard Set(lowered).count == lowered.count, !lowered.contains("") else {
                throw EditError(
                    "--attributes has an empty or repeated name: "
                        + given.joined(separator: ", "))
            }
            return AttributeNames(given)
        }
        if let recorded { return AttributeNames(recorded) }
        if count == official.count { return AttributeNames(official) }
        return AttributeNames((0..<count).map { "attr\($0)" })
    }

    /// The index of attribute `name`: a name (case-insensitive, official aliases accepted
    /// for the official names) or a 0-based index.
    ///
    /// - Throws: `EditError` listing the known names.
    public func index(of name: String) throws -> Int {
        let key = name.trimmingCharacters(in: .whitespaces).lowercased()
        if let i = names.firstIndex(where: { $0.lowercased() == key }) { return i }
        if isOfficial, let canonical = Self.officialAliases[key],
            let i = names.firstIndex(of: canonical)
        {
            return i
        }
        if let i = Int(key), names.indices.contains(i) { return i }
        var known = names.joined(separator: ", ")
        if isOfficial { known += " (also male, eyeglasses, smile)" }
        if Int(key) != nil {
            throw EditError(
                "attribute index \(key) is out of range 0-\(names.count - 1) (\(known))")
        }
        throw EditError("unknown attribute '\(name)'; this ISF knows \(known)")
    }

    /// Parses `NAME=VALUE` assignments (`--set gender=0`).
    ///
    /// - Throws: `EditError` for a malformed assignment, an unknown name or a value that
    ///   is not a finite number.
    public func assignments(_ texts: [String], flag: String = "--set") throws
        -> [(index: Int, value: Float)]
    {
        var seen: [Int: String] = [:]
        return try texts.map { text in
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw EditError("\(flag) '\(text)': expected NAME=VALUE, e.g. \(names[0])=1")
            }
            let i = try index(of: parts[0])
            guard let v = Float(parts[1].trimmingCharacters(in: .whitespaces)), v.isFinite else {
                throw EditError("\(flag) '\(text)': '\(parts[1])' is not a number (0 or 1)")
            }
            // Two values for one attribute would silently keep the last.
            if let earlier = seen[i] {
                throw EditError(
                    "\(flag) '\(text)' sets \(names[i]) again (already '\(earlier)'); give "
                        + "each attribute once")
            }
            seen[i] = text
            return (i, v)
        }
    }
}

// MARK: - Label files

/// A CelebA-style attribute list, as the official data uses: a line with the number of
/// rows, a line of attribute names, then one `file value…` line per image with values
/// ±1 or 0/1 (−1 is read as 0).
public struct AttributeLabelFile {
    /// The column names of the header line.
    public let columns: [String]
    /// One row per image, in file order.
    public let rows: [(file: String, values: [Float])]

    /// Parses the text of a label file named `file` (in messages).
    ///
    /// - Throws: `EditError` naming the file and line of anything malformed.
    public init(text: String, file: String) throws {
        var lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        while lines.last == "" { lines.removeLast() }
        guard lines.count >= 2 else {
            throw EditError(
                "\(file): a label file needs a count line and a header line of names")
        }
        guard let declared = Int(lines[0]), declared >= 0 else {
            throw EditError("\(file) line 1: expected the number of rows, got '\(lines[0])'")
        }
        let columns = lines[1].split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard !columns.isEmpty else { throw EditError("\(file) line 2: no attribute names") }
        var rows: [(file: String, values: [Float])] = []
        for (i, line) in lines.dropFirst(2).enumerated() where !line.isEmpty {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.count == columns.count + 1 else {
                throw EditError(
                    "\(file) line \(i + 3): \(fields.count - 1) values for \(columns.count) "
                        + "attributes")
            }
            let values = try fields.dropFirst().map { f -> Float in
                switch f {
                case "1", "+1", "1.0": return 1
                case "0", "-1", "0.0", "-1.0": return 0
                default:
                    throw EditError(
                        "\(file) line \(i + 3): value '\(f)' is not ±1 or 0/1")
                }
            }
            rows.append((fields[0], values))
        }
        guard rows.count == declared else {
            throw EditError(
                "\(file): the first line says \(declared) rows, the file has \(rows.count)")
        }
        self.columns = columns
        self.rows = rows
    }

    /// Reads the label file at `url`.
    public init(contentsOf url: URL) throws {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw EditError(
                "\(url.path): cannot read the label file (\(error.localizedDescription))")
        }
        try self.init(text: text, file: url.path)
    }

    /// Which column holds each attribute: by name (case-insensitive, with the official
    /// aliases), or, when the file has exactly as many columns as there are attributes
    /// and none of the names matches, by position (a file that names some attributes and
    /// not others is refused: reading it by position would put a named column in the wrong
    /// place).
    ///
    /// - Throws: `EditError` naming the attributes the file lacks.
    public func columnIndices(for attributes: AttributeNames, file: String) throws -> [Int] {
        let lowered = columns.map { $0.lowercased() }
        var found: [Int] = []
        var missing: [String] = []
        for name in attributes.names {
            // The exact name first, then the official aliases (Male for Gender, …).
            let aliases = AttributeNames.officialAliases.filter { $0.value == name }.map(\.key)
            if let i = lowered.firstIndex(of: name.lowercased())
                ?? lowered.firstIndex(where: { aliases.contains($0) })
            {
                found.append(i)
            } else {
                missing.append(name)
            }
        }
        if missing.isEmpty { return found }
        if found.isEmpty && columns.count == attributes.names.count {
            return Array(columns.indices)
        }
        throw EditError(
            "\(file) has no column for \(missing.joined(separator: ", ")) (its columns: "
                + columns.prefix(12).joined(separator: ", ")
                + (columns.count > 12 ? ", …" : "") + ")")
    }

    /// The label vectors [rows.count, D] of the rows `indices` (0-based data rows).
    ///
    /// - Throws: `EditError` when a row is missing, naming the row and the file's length.
    public func labels(rows indices: [Int], attributes: AttributeNames, file: String) throws
        -> Tensor
    {
        let cols = try columnIndices(for: attributes, file: file)
        var values: [Float] = []
        for i in indices {
            guard rows.indices.contains(i) else {
                throw EditError(
                    "\(file) has \(rows.count) label row\(rows.count == 1 ? "" : "s"); input "
                        + "\(i) has none (rows are matched to inputs by position, from 0)")
            }
            values += cols.map { rows[i].values[$0] }
        }
        return Tensor(shape: [indices.count, cols.count], values)  // [N, D]
    }
}

// MARK: - Which rows to keep

/// Which W+ rows are copied back from the source code after the edit.
public enum KeepLayers: Equatable, Sendable {
    /// Keep every edited row (the default).
    case none
    /// The authors' post-processing: each changed attribute may change only its own rows.
    case official
    /// These rows (0-based) come from the source code.
    case rows(Set<Int>)

    /// The rows each official attribute may change, for an 18-layer generator (the
    /// complement of the rows the authors copy back: Gender keeps 8..<18, Glasses keeps
    /// 0..<2 and 4..<18, Age keeps 0..<4 and 8..<18, Expression keeps 0..<4 and 6..<18).
    public static let officialEditableRows: [String: Range<Int>] = [
        "Gender": 0..<8, "Glasses": 2..<4, "Age": 4..<8, "Expression": 4..<6,
    ]
    /// The generator depth the official preset was written for.
    public static let officialLayers = 18

    /// Parses `none`, `official` or ranges such as `0-3,8-17` (inclusive at both ends).
    ///
    /// - Throws: `EditError` for malformed or reversed ranges.
    public static func parse(_ text: String) throws -> KeepLayers {
        switch text.lowercased() {
        case "none": return .none
        case "official": return .official
        default: break
        }
        var rows = Set<Int>()
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count),
                let lo = Int(bounds[0].trimmingCharacters(in: .whitespaces)),
                let hi = Int(bounds.last!.trimmingCharacters(in: .whitespaces)),
                lo >= 0, lo <= hi
            else {
                throw EditError(
                    "--keep-layers '\(text)': expected none, official or row ranges such as "
                        + "0-3,8-17 (inclusive, from 0)")
            }
            rows.formUnion(lo...hi)
        }
        guard !rows.isEmpty else {
            throw EditError("--keep-layers '\(text)': no rows given")
        }
        return .rows(rows)
    }

    /// Checks the setting against a generator with `layers` code rows and the ISF's
    /// attribute names.
    ///
    /// - Throws: `EditError` for the official preset on another depth than 18 or on
    ///   attributes that are not the official four, and for rows past the last layer.
    public func validate(layers: Int, attributes: AttributeNames) throws {
        switch self {
        case .none: return
        case .official:
            guard layers == Self.officialLayers else {
                throw EditError(
                    "--keep-layers official is written for 18-layer (1024 px) generators; this "
                        + "generator has \(layers) code rows. Give the rows to keep as ranges, "
                        + "e.g. --keep-layers 8-\(layers - 1)")
            }
            guard attributes.isOfficial else {
                throw EditError(
                    "--keep-layers official knows the attributes "
                        + AttributeNames.official.joined(separator: ", ")
                        + "; this ISF's are \(attributes.names.joined(separator: ", ")). "
                        + "Give the rows to keep as ranges instead")
            }
        case .rows(let rows):
            if let bad = rows.max(), bad >= layers {
                throw EditError(
                    "--keep-layers names row \(bad), but the generator's codes have rows "
                        + "0-\(layers - 1)")
            }
        }
    }

    /// The rows to copy from the source for an edit that changes the attributes
    /// `changed` (indices into `attributes`). With the official preset, the rows that any
    /// changed attribute may change stay edited (the union) and all others are kept; an
    /// edit that changes nothing keeps every row.
    public func keptRows(changed: [Int], layers: Int, attributes: AttributeNames) -> [Int] {
        switch self {
        case .none: return []
        case .rows(let rows): return rows.sorted()
        case .official:
            var editable = Set<Int>()
            for i in changed {
                if let r = Self.officialEditableRows[attributes.names[i]]
                    ?? Self.officialEditableRows.first(where: {
                        $0.key.lowercased() == attributes.names[i].lowercased()
                    })?.value
                {
                    editable.formUnion(r)
                }
            }
            return (0..<layers).filter { !editable.contains($0) }
        }
    }
}
