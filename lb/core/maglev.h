// Maglev consistent-hashing lookup table (Eisenbud et al., NSDI 2016), weighted.
//
// Every ikelb node that is given the same set of backends must produce a byte-identical table,
// otherwise a client whose packets land on different nodes (ECMP rehash, node failure) would
// reach different gateways and lose its IKE SA. The table is therefore a pure function of the
// SET of (name, weight) -> id, and the algorithm below is frozen as "maglev v1". Changing any
// part of it (hash, seeds, order, weight rule) breaks consistency across a mixed-version fleet
// and must come with a new version name; the golden test in tests/unit/maglev_test.cc guards it.
//
// maglev v1, for a prime table size M:
//   1. Backends with weight 0 are dropped. The rest are sorted by name, compared bytewise as
//      unsigned bytes (std::string's operator<); this canonical index i breaks ties below, so
//      the input order never matters.
//   2. Name hash: fnv1a64(name) is FNV-1a over the name's bytes (offset basis
//      0xcbf29ce484222325, prime 0x100000001b3). mix64(z) is the splitmix64 finalizer:
//        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9; z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
//        z ^= z >> 31.
//      maglev_name_hash(name, seed) = mix64(fnv1a64(name) ^ seed), all arithmetic mod 2^64.
//   3. Permutation: offset = maglev_name_hash(name, kMaglevOffsetSeed) % M,
//      skip = maglev_name_hash(name, kMaglevSkipSeed) % (M - 1) + 1. The backend's j-th
//      preferred slot is (offset + j * skip) % M; M prime makes this visit every slot.
//   4. Fill, in rounds r = 1, 2, ...: every backend starts with a credit of W / 2, W being the
//      largest weight (exactly, not rounded). In each round every backend, in canonical order,
//      adds its weight to its credit and, if the credit has reached W, pays W and claims one
//      slot: its next preferred slot that is still free. Filling stops the moment the last
//      slot is claimed. Equivalently, a backend of weight w makes its k-th claim in round
//      ceil((k - 1/2) * W / w), and claims are ordered by (round, canonical index).
//      With equal weights this is exactly classic Maglev (one claim per backend per round), so
//      each backend gets floor(M/N) or ceil(M/N) slots. With unequal weights a backend gets
//      M * w / sum(w) slots to within about one slot (see the tests for the bound), and only
//      the ratios of the weights matter: {1, 2} and {100, 200} give the same table.
//
// Movement: removing a backend frees its slots, and every other backend keeps the slots it
// claimed before the first round in which it would have picked up a freed slot; later claims
// may shift. Classic Maglev therefore moves a small number of slots between surviving backends
// on removal or addition; the tests measure it. The data path's affinity table, not this
// table, is what keeps already-established clients on their gateway.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ikelb {

inline constexpr uint32_t kMaglevDefaultTableSize = 65537;
// Slot value when no backend has weight > 0; a backend may not use it as its id.
inline constexpr uint32_t kMaglevNoBackend = 0xFFFFFFFFu;

// Seeds of the two name hashes (maglev v1). Arbitrary, but frozen.
inline constexpr uint64_t kMaglevOffsetSeed = 0x6d61676c65762d6fULL;  // "maglev-o"
inline constexpr uint64_t kMaglevSkipSeed = 0x6d61676c65762d73ULL;    // "maglev-s"

struct MaglevBackend {
  std::string name;  // unique within one table; seeds the permutation
  uint32_t id;       // value written into the table slots (the data path's backend id)
  uint32_t weight;   // 0 = not in the table
};

bool is_prime(uint64_t n);

// The maglev v1 name hash (step 2 above); exposed so that tests and tools can reproduce a table
// independently of this implementation.
uint64_t maglev_name_hash(std::string_view name, uint64_t seed);

// Returns a table of `table_size` slots, each the id of a backend (or kMaglevNoBackend if no
// backend has weight > 0). Throws std::invalid_argument, with a message saying what is wrong,
// if table_size is not prime, or is smaller than the number of backends with weight > 0, or a
// name repeats (weight 0 included), or a backend uses kMaglevNoBackend as its id.
std::vector<uint32_t> build_maglev_table(std::span<const MaglevBackend> backends,
                                         uint32_t table_size = kMaglevDefaultTableSize);

}  // namespace ikelb
