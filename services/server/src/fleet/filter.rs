//! What the endpoint lists take: filters, a page, and (a master's
//! consolidated list) the cursor that starts a page after a given endpoint.

use std::fmt;

use rampart_shared::topology::NameSegment;

use crate::security::SecurityStatus;

/// Most rows one page of a listing holds.
pub const MAX_LIMIT: i64 = 10_000;

/// A page of a listing, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    /// `limit` (else `default_limit`) rows from `offset` (else the first).
    pub fn new(limit: Option<i64>, offset: Option<i64>, default_limit: i64) -> Result<Self, FilterError> {
        let limit = limit.unwrap_or(default_limit);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(FilterError::LimitOutOfRange);
        }
        match offset {
            Some(offset) if offset < 0 => Err(FilterError::NegativeOffset),
            offset => Ok(Self { limit, offset: offset.unwrap_or(0) }),
        }
    }
}

/// Which endpoints a list shows.
#[derive(Clone, Debug, Default)]
pub struct EndpointFilter {
    /// Only this slave's (a master's consolidated list only).
    pub slave: Option<String>,
    /// Only this network group's (on a master, a group of `slave`).
    pub group: Option<i64>,
    pub status: Option<SecurityStatus>,
    pub licensed: Option<bool>,
    /// Part of the hostname (any case) or of the IP address.
    pub search: Option<String>,
}

impl EndpointFilter {
    /// The status named by a request, if it names one that exists.
    pub fn status(named: Option<&str>) -> Result<Option<SecurityStatus>, FilterError> {
        named.map(|s| SecurityStatus::parse(s).ok_or_else(|| FilterError::UnknownStatus(s.to_owned()))).transpose()
    }

    /// The `LIKE` pattern of [`Self::search`], its wildcards taken literally.
    pub(super) fn search_pattern(&self) -> Option<String> {
        self.search.as_ref().map(|s| format!("%{}%", s.replace('%', "\\%").replace('_', "\\_")))
    }

    /// The search as a master's consolidated list looks it up: the `LIKE`
    /// pattern its trigram indexes take, and the text every match contains.
    ///
    /// The trigram index reads the whole list of every trigram it is given,
    /// and a word every hostname shares (`pc` of `pc-5001`, `desktop`) has
    /// one entry per computer: at 10 million computers that list alone made
    /// a search take 80 ms. Letters and digits are what pg_trgm makes
    /// trigrams of, so the index is given one word of the search (the
    /// longest with a digit, else the longest; at least three long, else the
    /// whole search) and the whole search is checked on what it finds.
    pub(super) fn search_lookup(&self) -> Option<(String, &str)> {
        let search = self.search.as_deref()?;
        let words = search.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 3);
        let word = words.max_by_key(|w| (w.chars().any(|c| c.is_ascii_digit()), w.chars().count()));
        let pattern = match word {
            Some(word) => format!("%{word}%"),
            None => self.search_pattern()?,
        };
        Some((pattern, search))
    }

    /// The SQL text of [`Self::status`].
    pub(super) fn status_text(&self) -> Option<&'static str> {
        self.status.map(SecurityStatus::as_str)
    }
}

/// Where a page of a master's consolidated list starts: just after this
/// endpoint in the list's order (slave, then id). A deep page is then read
/// from the order index like the first one, where an offset would read and
/// throw away every row before it. Written `<slave>/<endpoint id>`: slave
/// ids never hold a `/`, so the first one splits (an endpoint id may).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct After {
    pub slave: String,
    pub id: String,
}

impl After {
    /// Reads `<slave>/<endpoint id>`, as the list's `next` gives it.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let bad = |why: &str| FilterError::BadCursor(format!("after '{text}' {why}"));
        let (slave, id) =
            text.split_once('/').ok_or_else(|| bad("must be <slave>/<endpoint id>, as `next` gives it"))?;
        NameSegment::parse(slave).map_err(|e| bad(&format!("names no slave: {e}")))?;
        if id.is_empty() {
            return Err(bad("names no endpoint after the '/'"));
        }
        if id.len() > 200 || id.chars().any(char::is_control) {
            return Err(bad("names no endpoint: ids are at most 200 printable characters"));
        }
        Ok(Self { slave: slave.to_owned(), id: id.to_owned() })
    }
}

impl fmt::Display for After {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.slave, self.id)
    }
}

/// A filter or page that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("status '{0}' is not one of protected, at_risk, infected, unprotected")]
    UnknownStatus(String),
    #[error("limit must be between 1 and 10000")]
    LimitOutOfRange,
    #[error("offset must be 0 or more")]
    NegativeOffset,
    /// A cursor that is not one the list gave (a request that cannot be read).
    #[error("{0}")]
    BadCursor(String),
    #[error("give offset or after, not both: after starts the page after the endpoint it names")]
    OffsetWithAfter,
    #[error("after pages a master's consolidated list; a site's list pages with offset")]
    AfterOnSite,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_checked() {
        assert_eq!(Page::new(None, None, 100).unwrap(), Page { limit: 100, offset: 0 });
        assert_eq!(Page::new(Some(10_000), Some(5), 100).unwrap(), Page { limit: 10_000, offset: 5 });
        assert!(matches!(Page::new(Some(0), None, 100), Err(FilterError::LimitOutOfRange)));
        assert!(matches!(Page::new(Some(10_001), None, 100), Err(FilterError::LimitOutOfRange)));
        assert!(matches!(Page::new(None, Some(-1), 100), Err(FilterError::NegativeOffset)));
    }

    #[test]
    fn statuses_and_searches_are_read() {
        assert_eq!(EndpointFilter::status(Some("at_risk")).unwrap(), Some(SecurityStatus::AtRisk));
        assert!(matches!(EndpointFilter::status(Some("bad")), Err(FilterError::UnknownStatus(s)) if s == "bad"));
        let filter = EndpointFilter { search: Some("a_b%".into()), ..Default::default() };
        assert_eq!(filter.search_pattern().as_deref(), Some("%a\\_b\\%%"));
    }

    #[test]
    fn a_search_looks_up_its_most_telling_word() {
        let lookup = |search: &str| {
            let filter = EndpointFilter { search: Some(search.into()), ..Default::default() };
            filter.search_lookup().map(|(pattern, _)| pattern)
        };
        assert_eq!(lookup("pc-5001").as_deref(), Some("%5001%"));
        assert_eq!(lookup("DESKTOP-AB12CD").as_deref(), Some("%AB12CD%"));
        assert_eq!(lookup("laptop-finance").as_deref(), Some("%finance%"));
        // No word the index can take: the whole search, wildcards literal.
        assert_eq!(lookup("10.0.39").as_deref(), Some("%10.0.39%"));
        assert_eq!(lookup("a_b").as_deref(), Some("%a\\_b%"));
        assert_eq!(EndpointFilter::default().search_lookup(), None);
    }

    #[test]
    fn cursors_read_what_next_wrote() {
        let after = After::parse("paris/sim1-00042").unwrap();
        assert_eq!(after, After { slave: "paris".into(), id: "sim1-00042".into() });
        assert_eq!(after.to_string(), "paris/sim1-00042");
        // Only the first '/' splits: an endpoint id may hold more.
        let after = After::parse("lyon/x/y").unwrap();
        assert_eq!((after.slave.as_str(), after.id.as_str()), ("lyon", "x/y"));
        assert_eq!(After::parse(&after.to_string()).unwrap(), after);
    }

    #[test]
    fn bad_cursors_say_what_is_wrong() {
        let message = |text: &str| match After::parse(text) {
            Err(FilterError::BadCursor(m)) => m,
            other => panic!("{text}: {other:?}"),
        };
        assert!(message("paris").contains("must be <slave>/<endpoint id>"), "{}", message("paris"));
        assert!(message("/pc-1").contains("names no slave"));
        assert!(message("Paris!/pc-1").contains("names no slave"));
        assert!(message("paris/").contains("names no endpoint"));
        assert!(message("paris/a\nb").contains("printable"));
        assert!(message(&format!("paris/{}", "x".repeat(201))).contains("at most 200"));
    }
}
