//! Flags whose rules clap cannot express, checked by the commands' own
//! `TryFrom` (used by [`crate::rollout`] and [`crate::task_target`]).

/// Implements clap's `Args` for `$checked` through the flags struct `$flags`:
/// clap parses the flags, then `TryFrom<$flags, Error = String>` applies the
/// rules clap cannot express (one flag read two ways, a value that must stand
/// alone). A broken rule is a usage error like clap's own: exit 2, with the
/// usage line.
macro_rules! args_checked_by {
    ($checked:ty, $flags:ty) => {
        impl clap::FromArgMatches for $checked {
            fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
                let flags = <$flags as clap::FromArgMatches>::from_arg_matches(matches)?;
                Self::try_from(flags)
                    .map_err(|message| clap::Error::raw(clap::error::ErrorKind::ValueValidation, message))
            }

            fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
                *self = Self::from_arg_matches(matches)?;
                Ok(())
            }
        }

        impl clap::Args for $checked {
            fn group_id() -> Option<clap::Id> {
                <$flags as clap::Args>::group_id()
            }

            fn augment_args(command: clap::Command) -> clap::Command {
                <$flags as clap::Args>::augment_args(command)
            }

            fn augment_args_for_update(command: clap::Command) -> clap::Command {
                <$flags as clap::Args>::augment_args_for_update(command)
            }
        }
    };
}
pub(crate) use args_checked_by;
