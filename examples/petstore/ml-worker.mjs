// The ML advisor's worker module: CPU-bound scoring that would block an event loop, run by the
// ml_advisor dependency's worker pool. Each named export is a task.

/** Scores every pet against a customer's preferences and returns the best `count`. */
export function recommend({ preferences, pets, count = 3 }) {
  const scored = pets.map((pet) => {
    let score = 0;
    // Deliberately heavy: a stand-in for a model's inference.
    for (let i = 0; i < 200_000; i++) score += Math.sin(i + pet.id) * 1e-6;
    if (preferences.species === pet.species) score += 10;
    score -= Math.abs((preferences.maxPrice ?? 1_000) - pet.price) / 100;
    return { ...pet, score };
  });
  return scored.sort((a, b) => b.score - a.score).slice(0, count);
}
