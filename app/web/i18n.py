"""German and English for the console: the seed help page's words where they exist.

Texts are written in English in the templates (``{{ _("Overview") }}``) and looked up here for
German; a test checks that every text in the templates has its German entry.  The language is
the ``lang`` cookie (the switch in the header) or else the browser's Accept-Language.
"""

# A catalogue reads best with one entry per line, however long the sentence.
# ruff: noqa: E501

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

COOKIE = "lang"
LANGUAGES = ("de", "en")
DEFAULT = "en"

STATES: dict[str, tuple[str, str]] = {
    # state: (English, German)
    "pending": ("pending", "wartend"),
    "waiting_approval": ("waiting for approval", "wartet auf Freigabe"),
    "draft": ("draft", "Entwurf"),
    "uploading": ("uploading", "wird übertragen"),
    "uploaded": ("uploaded", "übertragen"),
    "synced": ("synced", "synchronisiert"),
    "retrying": ("retrying", "neuer Versuch"),
    "parked": ("parked", "geparkt"),
    "skipped": ("skipped", "übersprungen"),
    "held": ("held", "angehalten"),
}

GERMAN: dict[str, str] = {
    # navigation and frame
    "Overview": "Synchronisieren",
    "Add sync account": "Synchronisations-Konto hinzufügen",
    "Documents": "Dokumente",
    "Failed / parked": "Fehlgeschlagen / geparkt",
    "Log out": "Abmelden",
    "Logged in as": "Angemeldet als",
    "Language": "Sprache",
    "Not found": "Nicht gefunden",
    # login
    "Log in": "Anmelden",
    "User": "Benutzer",
    "Password": "Passwort",
    "Wrong user name or password.": "Benutzername oder Passwort falsch.",
    "Too many failed logins. Try again in {seconds} seconds.": "Zu viele fehlgeschlagene Anmeldungen. Versuchen Sie es in {seconds} Sekunden erneut.",
    "The form's security token is missing or outdated. Reload the page and try again.": "Das Sicherheitsmerkmal des Formulars fehlt oder ist veraltet. Laden Sie die Seite neu "
    "und versuchen Sie es noch einmal.",
    "You have been logged out.": "Sie wurden abgemeldet.",
    # overview
    "Sync accounts": "Synchronisations-Konten",
    "Account": "Konto",
    "Direction": "Richtung",
    "State": "Zustand",
    "Last sync": "Letzte Synchronisation",
    "Next sync": "Nächste Synchronisation",
    "Documents by state": "Dokumente nach Zustand",
    "Quota left": "Kontingent übrig",
    "Backlog": "Rückstand",
    "ETA": "Fertig",
    "active": "aktiv",
    "paused": "pausiert",
    "needs attention": "braucht Aufmerksamkeit",
    "No sync account yet.": "Noch kein Synchronisations-Konto.",
    "Refreshes itself every {seconds} seconds.": "Aktualisiert sich alle {seconds} Sekunden.",
    "{left} of {limit} left": "{left} von {limit} frei",
    "until": "bis",
    # quota windows (as app.backlog names them; Billomat's reads like "15 min" in both)
    "minute": "Minute",
    "day": "Tag",
    "upload hour": "Upload-Stunde",
    "blocked until": "gesperrt bis",
    "unknown": "unbekannt",
    "in {minutes} min": "in {minutes} Min.",
    "now": "jetzt",
    "parked documents": "geparkte Dokumente",
    "last poll failed": "letzte Abfrage fehlgeschlagen",
    # directions
    "Export": "Export",
    "Import": "Import",
    "export": "Export",
    "import": "Import",
    "GMI → Billomat inbox (Inbox-Dokumente)": "GetMyInvoices → Billomat (Inbox-Dokumente)",
    "Billomat → GMI": "Billomat → GetMyInvoices",
    # wizard
    "Start the integration": "Integrations-Prozess starten",
    "Choose the direction and the system.": "Wählen Sie die Richtung und das System.",
    "Documents collected in GetMyInvoices land in Billomat's inbox.": "In GetMyInvoices gesammelte Belege landen in Billomat unter „Inbox-Dokumente“.",
    "Finished Billomat documents (their PDFs) are uploaded to GetMyInvoices.": "Fertige Billomat-Dokumente (ihre PDFs) werden zu GetMyInvoices übertragen.",
    "System": "System",
    "Next": "Weiter",
    "Back": "Zurück",
    "Save": "Speichern",
    "Cancel": "Abbrechen",
    "Add sync target": "Synchronisationsziel hinzufügen",
    "Add export sync account": "Dokumentenexport: Synchronisations-Konto hinzufügen",
    "Add import sync account": "Dokumentenimport: Import-Synchronisierungskonto hinzufügen",
    "Interval": "Zeitintervall",
    "How often the account is synchronised, e.g. 15m, 1h, 1d.": "Wie oft synchronisiert wird, z. B. 15m, 1h, 1d.",
    "Note": "Notiz",
    "Advanced settings": "Erweiterte Einstellungen",
    "Document types": "Dokumententypen",
    "None ticked: all types.": "Keiner ausgewählt: alle Typen.",
    "Tags": "Tags",
    "Comma-separated; a document needs one of them. Empty: any.": "Durch Kommas getrennt; ein Dokument braucht einen davon. Leer: alle.",
    "Approval required (Freigabefeld)": "Freigabefeld",
    "Export only documents whose approval workflow is completed.": "Nur Dokumente exportieren, deren Freigabe-Workflow abgeschlossen ist.",
    "Archive after transfer": "Nach der Übertragung in GetMyInvoices archivieren",
    "Account type": "Kontotyp",
    "Name of the account": "Name des Kontos",
    "A name that does not exist yet.": "Ein noch nicht vorhandener Name.",
    "Billomat ID": "Billomat-ID",
    "The part of your Billomat address before .billomat.net.": "Der Teil vor „.billomat.net“ in der Browserleiste Ihres Billomat-Kontos.",
    "Billomat API key": "Billomat API-Schlüssel",
    "Billomat → Settings → API access → show API key.": "Billomat → Einstellungen → API-Zugriff → „API-Schlüssel anzeigen“.",
    "GetMyInvoices API key": "GetMyInvoices API-Schlüssel",
    "Date range": "Datumsbereich",
    "from": "von",
    "to": "bis",
    "Either end may stay open.": "Beide Enden dürfen offen bleiben.",
    "Default document type": "Standard-Dokumententyp",
    "For Billomat kinds without their own mapping.": "Für Billomat-Dokumentarten ohne eigene Zuordnung.",
    "Default tags": "Standard-Tags",
    "Default company": "Standard Firma",
    "Created in GetMyInvoices as a custom company if missing.": "Wird in GetMyInvoices als eigene Firma angelegt, falls sie fehlt.",
    "Document kinds": "Dokumentarten",
    "Webhook user": "Webhook-Benutzer",
    "Webhook password": "Webhook-Passwort",
    "Optional: Billomat's webhooks (Settings → Webhooks) with these credentials.": "Optional: Billomat-Webhooks (Einstellungen → Webhooks) mit diesen Zugangsdaten.",
    "This field is required.": "Dieses Feld ist erforderlich.",
    "Please correct the marked fields.": "Bitte korrigieren Sie die markierten Felder.",
    "stored, ends in {tail}; leave empty to keep": "gespeichert, endet auf {tail}; leer lassen "
    "zum Beibehalten",
    "Step {n}": "Schritt {n}",
    "Integration complete: the account {name} was added.": "Integration abgeschlossen: das Konto {name} wurde hinzugefügt.",
    # account
    "Settings": "Einstellungen",
    "Edit": "Bearbeiten",
    "Pause": "Pausieren",
    "Resume": "Fortsetzen",
    "Remove": "Entfernen",
    "Saved.": "Gespeichert.",
    "Nothing changed.": "Nichts geändert.",
    "Paused.": "Pausiert.",
    "Resumed.": "Fortgesetzt.",
    "History": "Verlauf",
    "When": "Wann",
    "Who": "Wer",
    "What": "Was",
    "Details": "Details",
    "added": "hinzugefügt",
    "updated": "geändert",
    "resumed": "fortgesetzt",
    "removed": "entfernt",
    "Latest documents": "Neueste Dokumente",
    "all documents of this account": "alle Dokumente dieses Kontos",
    "yes": "ja",
    "no": "nein",
    "all": "alle",
    "any": "alle",
    "none": "keine",
    "API keys": "API-Schlüssel",
    "Remove the account {name}?": "Das Konto {name} entfernen?",
    "Its ledger holds {total} documents, {synced} of them synced.": "Sein Journal enthält {total} Dokumente, davon {synced} synchronisiert.",
    "Type the account's name to confirm.": "Geben Sie zur Bestätigung den Namen des Kontos ein.",
    "The name does not match.": "Der Name stimmt nicht überein.",
    "Removed the account {name}.": "Das Konto {name} wurde entfernt.",
    "Edit {name}": "{name} bearbeiten",
    # documents
    "Search": "Suchen",
    "Number, source or target id": "Nummer, Quell- oder Ziel-ID",
    "Filter": "Filtern",
    "Next page": "Nächste Seite",
    "First page": "Erste Seite",
    "No documents.": "Keine Dokumente.",
    "Number": "Nummer",
    "Kind": "Art",
    "Type": "Typ",
    "Date": "Datum",
    "Source": "Quelle",
    "Target": "Ziel",
    "Attempts": "Versuche",
    "Last error": "Letzter Fehler",
    "Document": "Dokument",
    "Detected": "Erkannt",
    "Synced": "Synchronisiert",
    "Updated": "Aktualisiert",
    "Source (API)": "Quelle (API)",
    "Target (API)": "Ziel (API)",
    "the pipeline": "die Synchronisation",
    "Replay this document": "Dieses Dokument erneut verarbeiten",
    # failed / parked
    "Nothing is parked.": "Nichts ist geparkt.",
    "Reason": "Grund",
    "documents": "Dokumente",
    "Select all": "Alle auswählen",
    "Preview replay of the selection": "Erneute Verarbeitung der Auswahl – Vorschau",
    "Preview replay of this group": "Erneute Verarbeitung dieser Gruppe – Vorschau",
    "Preview replay of everything parked": "Erneute Verarbeitung von allem Geparkten – Vorschau",
    "Replay preview (dry run)": "Vorschau der erneuten Verarbeitung (Probelauf)",
    "Nothing would be replayed.": "Nichts würde erneut verarbeitet.",
    "{n} would be replayed.": "{n} würden erneut verarbeitet.",
    "Replay now": "Jetzt erneut verarbeiten",
    "Replayed {n} documents.": "{n} Dokumente erneut verarbeitet.",
    "Action": "Aktion",
    "would move": "würde verschoben",
    "would rebuild": "würde neu erstellt",
    "moved": "verschoben",
    "rebuilt": "neu erstellt",
    "dropped (synced since)": "verworfen (inzwischen synchronisiert)",
    "dropped (duplicate)": "verworfen (doppelt)",
    "Fix the cause first; replayed documents go back to work with their attempts reset.": "Beheben Sie zuerst die Ursache; erneut verarbeitete Dokumente starten mit "
    "zurückgesetzten Versuchen.",
    "Choose at least one document.": "Wählen Sie mindestens ein Dokument.",
    "RabbitMQ is not reachable: {reason}": "RabbitMQ ist nicht erreichbar: {reason}",
    "{n} other parked messages left alone.": "{n} andere geparkte Nachrichten unverändert.",
    "more in this group": "weitere in dieser Gruppe",
}


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The switch's choice, else the first of de/en the browser prefers, else English."""
    if cookie in LANGUAGES:
        return str(cookie)
    candidates: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        candidates.append((quality, -index, primary))
    if candidates:
        quality, _, best = max(candidates)
        if quality > 0:
            return best
    return DEFAULT


def translator(lang: str) -> Callable[..., str]:
    def translate(text: str, **values: object) -> str:
        result = GERMAN.get(text, text) if lang == "de" else text
        return result.format(**values) if values else result

    return translate


def state_label(state: str, lang: str) -> str:
    english, german = STATES.get(state, (state, state))
    return german if lang == "de" else english


def clock(iso: str | None, now: datetime | None = None) -> str:
    """``19:15`` for a moment later today (UTC, as everywhere in the console), else as ``when``."""
    if not iso:
        return "–"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    today = (now or datetime.now(UTC)).date()
    return moment.strftime("%H:%M") if moment.date() == today else when(iso)


def when(iso: str | None) -> str:
    """An ISO timestamp as ``2026-11-26 14:03 UTC`` (the console shows UTC, like the CLI)."""
    if not iso:
        return "–"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return moment.strftime("%Y-%m-%d %H:%M UTC")
