/// Levenshtein distance over characters.
package func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}

/// The name in `known` closest to `name`, when it is close enough to be a typo of it
/// (at most 2 edits, or a third of its length); for "did you mean …?" hints.
package func closestName(to name: String, in known: some Collection<String>) -> String? {
    guard let closest = known.min(by: { editDistance($0, name) < editDistance($1, name) }) else { return nil }
    return editDistance(closest, name) <= max(2, name.count / 3) ? closest : nil
}
