//! The docs are tested: every JSON block in the README is a task spec that must parse and validate.

use tidemark_tests::harness::stack::repo_dir;

fn json_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```json") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_json_block_in_the_readme_is_a_valid_task_spec() {
    let readme = std::fs::read_to_string(repo_dir().join("README.md")).expect("read README.md");
    let blocks = json_blocks(&readme);
    assert!(!blocks.is_empty(), "the README has no JSON example");
    for (i, block) in blocks.iter().enumerate() {
        if let Err(e) = tidemark_core::parse_task_spec(block) {
            panic!("README JSON block {i} is not a valid task spec: {e}\n{block}");
        }
    }
}

#[test]
fn the_block_extractor_finds_blocks() {
    let md = "text\n```json\n{\"a\": 1}\n```\n```sh\nls\n```\n```json\n[]\n```\n";
    assert_eq!(json_blocks(md), ["{\"a\": 1}\n", "[]\n"]);
}
