//! A wrapper for secrets (keys, buyer codes) that never shows its value by accident.
//!
//! `Debug` and `Display` print a mask, so a secret inside a struct that gets logged stays hidden.
//! The value is read only through [`Secret::expose`], which is easy to find in review.

use std::fmt;

/// A value that must not appear in logs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub const fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The secret value. Every call site is a place where the secret may leak: keep them few.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_mask_the_value() {
        let s = Secret::new("286648812345678901");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(*s.expose(), "286648812345678901");
    }
}
