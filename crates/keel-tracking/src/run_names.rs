//! Readable default run names ("bold-otter-417"), as MLflow users expect
//! when they start a run without naming it.

const ADJECTIVES: &[&str] = &[
    "able", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fair", "fast",
    "gentle", "glad", "grand", "keen", "kind", "lively", "lucky", "merry", "neat", "noble",
    "proud", "quick", "quiet", "rare", "sharp", "shy", "smart", "steady", "sunny", "swift", "tidy",
    "vast", "warm", "wise", "witty", "young",
];
const NOUNS: &[&str] = &[
    "ant", "bass", "bat", "bear", "bee", "cat", "crab", "crow", "deer", "dove", "duck", "eagle",
    "eel", "finch", "fox", "frog", "goat", "hare", "hawk", "heron", "lark", "lynx", "mole", "moth",
    "newt", "otter", "owl", "panda", "pike", "robin", "seal", "shark", "snail", "swan", "toad",
    "trout", "whale", "wolf", "wren", "yak",
];

/// A name derived from the run id's random bits.
pub(crate) fn run_name_for(run_id: &uuid::Uuid) -> String {
    let b = run_id.as_u128();
    let adj = ADJECTIVES[(b % ADJECTIVES.len() as u128) as usize];
    let noun = NOUNS[((b >> 16) % NOUNS.len() as u128) as usize];
    let num = (b >> 32) % 1000;
    format!("{adj}-{noun}-{num}")
}
