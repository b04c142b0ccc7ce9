//! Estimated prices of remote models, for the usage's cost column: list prices in US dollars
//! per million tokens, by model name prefix (the most specific first). Local models cost
//! nothing; a remote model not listed here has no price: its requests are counted as unpriced,
//! and their cost is shown as unknown, not as free.

use super::usage::Price;

/// (prefix, $ per Mtok in, $ per Mtok out), in millionths of a dollar.
const PRICES: &[(&str, u64, u64)] = &[
    ("gpt-4o-mini", 150_000, 600_000),
    ("gpt-4o", 2_500_000, 10_000_000),
    ("gpt-4.1-nano", 100_000, 400_000),
    ("gpt-4.1-mini", 400_000, 1_600_000),
    ("gpt-4.1", 2_000_000, 8_000_000),
    ("gpt-5-nano", 50_000, 400_000),
    ("gpt-5-mini", 250_000, 2_000_000),
    ("gpt-5", 1_250_000, 10_000_000),
    ("claude-3-5-haiku", 800_000, 4_000_000),
    ("claude-haiku-4", 1_000_000, 5_000_000),
    ("claude-3-7-sonnet", 3_000_000, 15_000_000),
    ("claude-sonnet-4", 3_000_000, 15_000_000),
    ("claude-opus-4", 15_000_000, 75_000_000),
    ("gemini-2.0-flash-lite", 75_000, 300_000),
    ("gemini-2.0-flash", 100_000, 400_000),
    ("gemini-2.5-flash-lite", 100_000, 400_000),
    ("gemini-2.5-flash", 300_000, 2_500_000),
    ("gemini-2.5-pro", 1_250_000, 10_000_000),
];

/// The price of `model`; `local` models are free; `None` for a remote model not listed.
pub fn price(model: &str, local: bool) -> Option<Price> {
    if local {
        return Some(Price::default());
    }
    PRICES
        .iter()
        .find(|(prefix, _, _)| model.starts_with(prefix))
        .map(|&(_, per_mtok_in, per_mtok_out)| Price {
            per_mtok_in,
            per_mtok_out,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Usage;

    #[test]
    fn the_most_specific_prefix_prices_a_model() {
        let listed = |model| price(model, false).map(|p| p.per_mtok_in);
        assert_eq!(listed("gpt-4o-mini-2024-07-18"), Some(150_000));
        assert_eq!(listed("gpt-4o"), Some(2_500_000));
        assert_eq!(price("gpt-4o-mini", true), Some(Price::default()));
        assert_eq!(
            price("mystery", true),
            Some(Price::default()),
            "local: free"
        );
        assert_eq!(price("mystery", false), None, "remote, not listed: unknown");
        let cost = price("claude-3-5-haiku-latest", false).map(|p| {
            p.cost_micros(Usage {
                tokens_in: 1_000,
                tokens_out: 1_000,
            })
        });
        // 1000 × 0.8 $/M + 1000 × 4 $/M = 0.0048 $.
        assert_eq!(cost, Some(4_800));
    }
}
