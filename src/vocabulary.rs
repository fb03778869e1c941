//! Closed vocabularies: enums whose JSON form is a fixed key (`key()`) and whose
//! reader-facing name is `label()`. One macro, so every vocabulary serialises, prints
//! and lists itself the same way (as `Category` does).

/// Declares `enum NAME { Variant => "key", "label"; … }` with `ALL`, `key()`,
/// `label()`, `Serialize` (as the key) and `Display` (the key, as the tables print it).
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $key:literal, $label:literal;)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),*
        }

        impl $name {
            /// Every value, in declaration order (the order reports list them).
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stable name in JSON.
            pub fn key(self) -> &'static str {
                match self {
                    $($name::$variant => $key),*
                }
            }

            /// What a reader sees.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label),*
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.key())
            }
        }

        /// Compares by key, so a value reads as what its JSON says (`language == "go"`).
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.key() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.key() == *other
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.key())
            }
        }
    };
}

pub(crate) use vocabulary;
