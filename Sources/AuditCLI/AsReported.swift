import ArgumentParser
import AuditEngine

/// `--as-reported K`: the answer as it was at system time K — the events recorded by
/// then, folded with the code of the builds live then (from the database's code
/// history), and for a saved query the text recorded last at or before K.
struct AsReportedOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The answer as it was reported at this system time: the events recorded by then, the projection code live then and the query text recorded then (with --as-of: about that time). \(TimeArgument.selectingForms).",
            valueName: "time"),
        transform: TimeArgument.selecting)
    var asReported: Timestamp?

    /// Refuses the options a report as it was cannot take.
    func validate(_ time: TimeOptions, series: SeriesOptions, comparing: Bool) throws {
        guard asReported != nil else { return }
        if time.knownAt != nil { throw ValidationError("--as-reported is known at its own time: give it or --known-at, not both") }
        if series.isSeries || comparing { throw ValidationError("--as-reported answers one question, not a series or a comparison") }
    }

    /// The selection (known at K, as of `--as-of`), and the projections as the builds
    /// live at K define them; the notes said on stderr (builds of another engine version).
    func projections(_ store: EventStore, _ time: TimeOptions) throws -> (TemporalSelection, [Projection]) {
        let at = asReported!
        let reported = try store.reportedProjections(at: at)
        for note in reported.notes { warn("audit: \(note)") }
        return (TemporalSelection(asOf: time.asOf, knownAt: at), reported.projections)
    }

    /// The SQL to run: a saved query's text as recorded last at or before K; `--sql` as
    /// given, with a note.
    ///
    /// - Throws: `QueryError` (exit 65) when no text of the saved query was recorded by then.
    func sql(_ store: EventStore, _ query: QueryText, _ workspace: WorkspaceOptions) throws -> (sql: String, source: String) {
        let at = asReported!
        guard let name = query.name else {
            warn("audit: --as-reported with --sql runs the SQL given, not a text recorded at \(at)")
            return (query.sql ?? "", "--sql")
        }
        let file = SavedQuery.file(name, in: workspace.queries)
        guard let recorded = try store.recordedQuery(name, at: at) else {
            throw QueryError(
                source: file,
                message: "no text of query \(name) was recorded at or before \(at): texts are recorded by the query exports, scheduled exports and reports that run a saved query (none before this version of audit); give the SQL with --sql to run it over what was known then")
        }
        if let now = try? SavedQuery.load(name, from: workspace.queries), now != recorded.text {
            warn("audit: \(file) has changed since \(recorded.recordedAt): running the text recorded then (seq \(recorded.seq))")
        }
        return (recorded.text, "\(file) as recorded at seq \(recorded.seq)")
    }
}
