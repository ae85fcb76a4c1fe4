//! What the endpoint lists take: filters and a page.

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

    /// The SQL text of [`Self::status`].
    pub(super) fn status_text(&self) -> Option<&'static str> {
        self.status.map(SecurityStatus::as_str)
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
}
