//! `rampartctl license`: registration on a site, and issuing keys.
//!
//! `show` and `set` talk to the server (refused on a master, which needs no
//! license). `issue` runs locally and never contacts a server: it signs a
//! [`License`] with the vendor's private key file, the way the vendor would.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{Days, NaiveDate};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use uuid::Uuid;

use rampart_shared::license::{License, VendorKey, VENDOR_PUBLIC_KEY};

use crate::output::{count, details, emit, pretty_json, text};
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// The site's license: state, seats used, expiry.
    Show,
    /// Register a license key (forged, malformed or expired keys are refused).
    Set(SetArgs),
    /// Issue a key with a vendor private key (local, no server).
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SetArgs {
    /// The key, RAMPART1.<payload>.<signature>.
    key: Option<String>,
    /// Read the key from this file.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The vendor's private key: 32 bytes of hex in a file.
    #[arg(long, value_name = "FILE")]
    vendor_key: PathBuf,
    /// How many endpoints the license covers.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    seats: u32,
    #[command(flatten)]
    validity: Validity,
    /// Who the license is for.
    #[arg(long, value_name = "NAME", default_value = "unnamed customer")]
    customer: String,
}

/// How long the license lasts: a number of days from today, or a last day.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Validity {
    /// Valid for this many days from today.
    #[arg(long, value_name = "D", value_parser = clap::value_parser!(u64).range(1..))]
    days: Option<u64>,
    /// Last day the license is valid (YYYY-MM-DD).
    #[arg(long, value_name = "YYYY-MM-DD")]
    expires: Option<NaiveDate>,
}

impl Validity {
    /// The last valid day, which must not be in the past.
    fn expires_on(&self, today: NaiveDate) -> anyhow::Result<NaiveDate> {
        let expires_on = match (self.days, self.expires) {
            (Some(days), _) => today.checked_add_days(Days::new(days)).context("--days reaches beyond the calendar")?,
            (None, Some(date)) => date,
            (None, None) => anyhow::bail!("give --days or --expires"),
        };
        anyhow::ensure!(expires_on >= today, "--expires {expires_on} is in the past");
        Ok(expires_on)
    }
}

pub async fn run(command: LicenseCommand, session: &Session) -> anyhow::Result<()> {
    match command {
        LicenseCommand::Show => {
            let answer = session.client.get(&["api", "license"], &[]).await?;
            session.print(&answer, render)
        }
        LicenseCommand::Set(args) => {
            let key = match (args.key, args.file) {
                (Some(key), _) => key,
                (None, Some(file)) => read_trimmed(&file, "license key")?,
                (None, None) => anyhow::bail!("give the key or --file"),
            };
            let answer = session.client.put(&["api", "license"], &json!({ "key": key.trim() })).await?;
            session.print(&answer, |license| format!("License registered.\n{}", render(license)))
        }
        LicenseCommand::Issue(args) => {
            let today = chrono::Local::now().date_naive();
            let (key, license) = issue(&args, today)?;
            if session.json() {
                emit(&pretty_json(&json!({ "key": key, "license": license })))
            } else {
                // The key alone on stdout, so `$(rampartctl license issue ...)` captures it.
                eprintln!(
                    "Issued license {} for {}: {} seats, valid through {}.",
                    license.license_id, license.customer, license.seats, license.expires_on
                );
                emit(&format!("{key}\n"))
            }
        }
    }
}

/// Signs a new license with the vendor key file and checks the result
/// verifies. Warns (stderr) when the key is not the one this build trusts.
pub fn issue(args: &IssueArgs, today: NaiveDate) -> anyhow::Result<(String, License)> {
    let hex = read_trimmed(&args.vendor_key, "vendor key")?;
    let vendor =
        VendorKey::from_hex(&hex).with_context(|| format!("Invalid vendor key in {}", args.vendor_key.display()))?;
    let license = License {
        license_id: Uuid::new_v4(),
        customer: args.customer.clone(),
        seats: args.seats,
        issued_on: today,
        expires_on: args.validity.expires_on(today)?,
    };
    let key = license.issue(&vendor);
    License::verify_with(&key, today, &vendor.public_key_hex()).context("The issued key does not verify")?;
    if !vendor.public_key_hex().eq_ignore_ascii_case(VENDOR_PUBLIC_KEY) {
        eprintln!(
            "warning: this vendor key is not the one this build trusts; \
             only servers built with RAMPART_VENDOR_PUBLIC_KEY={} will accept the key",
            vendor.public_key_hex()
        );
    }
    Ok((key, license))
}

fn read_trimmed(path: &Path, what: &str) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("Failed to read the {what} file {}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// One line about a license, for `status` and `dashboard`:
/// `valid, 500/1000 seats used, 0 unlicensed, expires on 2027-11-26`.
pub fn license_summary(license: &Value) -> String {
    match license["state"].as_str() {
        None => "-".to_owned(),
        Some("none") => "none: no license key registered".to_owned(),
        Some(state) => {
            let mut line = format!("{state}, {}/{} seats used", count(&license["used"]), count(&license["seats"]));
            if !license["unlicensed"].is_null() {
                line.push_str(&format!(", {} unlicensed", count(&license["unlicensed"])));
            }
            line.push_str(&format!(", expires on {}", text(&license["expires_on"])));
            line
        }
    }
}

fn render(l: &Value) -> String {
    details(&[
        ("State", text(&l["state"])),
        ("License", text(&l["license_id"])),
        ("Customer", text(&l["customer"])),
        ("Seats", format!("{} ({} used)", text(&l["seats"]), text(&l["used"]))),
        ("Unlicensed", format!("{} endpoints over the seat count", count(&l["unlicensed"]))),
        ("Expires on", text(&l["expires_on"])),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn validity_is_days_from_today_or_a_date_not_in_the_past() {
        let today = day("2026-11-26");
        let days = Validity { days: Some(365), expires: None };
        assert_eq!(days.expires_on(today).unwrap(), day("2027-11-26"));
        let date = Validity { days: None, expires: Some(day("2026-12-31")) };
        assert_eq!(date.expires_on(today).unwrap(), day("2026-12-31"));
        let past = Validity { days: None, expires: Some(day("2026-11-25")) };
        assert!(past.expires_on(today).unwrap_err().to_string().contains("in the past"));
    }

    #[test]
    fn license_lines() {
        assert_eq!(license_summary(&json!({"state": "none"})), "none: no license key registered");
        assert_eq!(
            license_summary(
                &json!({"state": "expired", "seats": 10, "used": 12, "unlicensed": 2, "expires_on": "2026-01-01"})
            ),
            "expired, 12/10 seats used, 2 unlicensed, expires on 2026-01-01"
        );
    }
}
