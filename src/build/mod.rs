//! Assembling OCI images from files (fixtures, demos, and layers rebuilt for advice).
