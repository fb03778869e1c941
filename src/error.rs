//! Whose fault an error is: the user's or the image's (bad input, exit 2) or
//! ballast's own (exit 3). Every error enum of the library says which, beside its
//! definition; the CLI maps that to an exit code in one place.

pub trait Fault {
    /// Something the user gave (a flag, a file, a reference) or an image or registry
    /// they pointed at is wrong: exit code 2.
    fn is_bad_input(&self) -> bool;
}
