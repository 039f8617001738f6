// Any answer of resmgrd as tables, for the operations without a rendering of their own: the
// scalar fields of an object (nested objects of scalars flattened as "a.b") in a FIELD VALUE
// table, long texts wrapped; a list of objects as one table (a row each, the union of their
// fields as columns, the identity first (timestamp, name, model, ids), then value, then the rest;
// at most kMaxRows rows and the count of the rest); an object whose members
// are objects with mostly the same fields as a matrix; deeper parts under their path as a
// heading. Keys and values come from outside and are sanitized by the table. Pure.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/table.hpp"

namespace resmgr::cli {

constexpr std::size_t kMaxRows = 40;

// A scalar as a person reads it: strings as they are, whole numbers whole, others to at most 3
// decimals, true/false as yes/no, null as unknown(); a list of scalars joined with ", " ("none"
// when empty).
std::string value_text(const nlohmann::json& value, Charset charset);

// "cpu_cores" -> "cpu cores" (FIELD column); header_text: "CPU CORES" (a column's header).
std::string field_text(const std::string& key);
std::string header_text(const std::string& key);

// `text` (sanitized) cut at spaces into lines of at most `width` columns (a word longer than
// the width is broken into pieces: nothing is lost).
std::vector<std::string> wrap(const std::string& text, std::size_t width);

// The lines of `value` rendered as above, each at most display.width columns.
std::vector<std::string> render_fields(const nlohmann::json& value, const Display& display);

} // namespace resmgr::cli
