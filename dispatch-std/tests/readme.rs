//! The README's API example is `examples/quickstart.rs`, which compiles and
//! runs in CI; this keeps the README's copy identical.

#[test]
fn the_readme_shows_the_quickstart_example_as_it_is() {
    let readme = include_str!("../../README.md");
    let example = include_str!("../examples/quickstart.rs");
    // The README leaves out the file's opening doc comment.
    let code: String = example
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        readme.contains(&format!("```rust\n{code}```")),
        "README.md's example differs from examples/quickstart.rs; copy the file's code (after its doc comment) into it"
    );
}
