// Request lines and the seed's envelopes.
#include <gtest/gtest.h>

#include "resmgr/protocol.hpp"

using namespace resmgr;
using nlohmann::json;

TEST(RequestLine, Parses) {
    auto r = parse_request_line(R"({"operation":"status","resource_type":"agents","params":{"x":1}})");
    EXPECT_EQ(r.operation, "status");
    EXPECT_EQ(r.resource_type, "agents");
    EXPECT_EQ(r.params["x"], 1);
    EXPECT_TRUE(parse_request_line(R"({"operation":"status"})").params.is_object());
}

TEST(RequestLine, MalformedIsInvalidRequest) {
    for (auto bad : {"", "{", "[]", "42", R"({"params":{}})", R"({"operation":""})", R"({"operation":7})",
                     R"({"operation":"status","params":[]})", R"({"operation":"status","bogus":1})",
                     "{\"operation\":\"status\"}\xff"}) {
        try {
            parse_request_line(bad);
            ADD_FAILURE() << "accepted: " << bad;
        } catch (const ApiError& e) {
            EXPECT_EQ(e.code, ErrorCode::INVALID_REQUEST) << bad;
        }
    }
}

// A request `depth` levels deep in all (the request object is level 1), `filler` inside.
std::string nested_request(size_t depth, const std::string& filler = "") {
    return R"({"operation":"status","params":{"x":)" + std::string(depth - 2, '[') + filler + std::string(depth - 2, ']') + "}}";
}

TEST(RequestLine, NestingIsLimitedBeforeParsing) {
    EXPECT_NO_THROW(parse_request_line(nested_request(kMaxRequestDepth)));
    for (size_t depth : {kMaxRequestDepth + 1, size_t{100000}}) {
        try {
            parse_request_line(nested_request(depth));
            ADD_FAILURE() << "accepted " << depth << " levels";
        } catch (const ApiError& e) {
            EXPECT_EQ(e.code, ErrorCode::INVALID_REQUEST);
            EXPECT_NE(std::string(e.what()).find("nested"), std::string::npos) << e.what();
        }
    }
    // Brackets in strings (escaped quotes included) are not nesting.
    const std::string brackets = std::string(1000, '[') + "\\\"{{{" + std::string(1000, '{');
    EXPECT_NO_THROW(parse_request_line(nested_request(kMaxRequestDepth, "\"" + brackets + "\"")));
    EXPECT_THROW(parse_request_line(nested_request(kMaxRequestDepth + 1, "\"" + brackets + "\"")), ApiError);
}

// Every nlohmann exception from the client's text is INVALID_REQUEST in plain words.
TEST(RequestLine, NumbersNlohmannCannotHoldAreInvalidRequest) {
    for (const std::string number : {"1e400", "-1e400", "1e309", "123456789012345678901234567890e300"}) {
        try {
            parse_request_line(R"({"operation":"status","params":{"x":)" + number + "}}");
            ADD_FAILURE() << "accepted " << number;
        } catch (const ApiError& e) {
            EXPECT_EQ(e.code, ErrorCode::INVALID_REQUEST) << number;
            EXPECT_EQ(std::string(e.what()).find("[json.exception"), std::string::npos) << e.what();
            EXPECT_EQ(e.details.find("[json.exception"), std::string::npos) << e.details;
        }
    }
    // Integers past 64 bits are parsed as doubles: not an error of the parser.
    EXPECT_NO_THROW(parse_request_line(R"({"operation":"status","params":{"x":123456789012345678901234567890}})"));
}

TEST(Envelope, SuccessHasSeedShape) {
    SuccessBody body;
    body.result = {{"allocation_id", "alloc_1"}};
    body.resources_affected = 3;
    body.recommendations = {"Monitor performance for next hour"};
    auto t = *parse_timestamp("2025-01-15T12:00:00Z");
    json e = success_envelope("allocate", t, body, 800'000);
    EXPECT_EQ(e["status"], "success");
    EXPECT_EQ(e["operation"], "allocate");
    EXPECT_EQ(e["timestamp"], "2025-01-15T12:00:00Z");
    EXPECT_EQ(e["result"]["allocation_id"], "alloc_1");
    EXPECT_EQ(e["metrics"]["execution_time"], "800.0ms");
    EXPECT_EQ(e["metrics"]["resources_affected"], 3);
    EXPECT_EQ(e["recommendations"][0], "Monitor performance for next hour");
}

TEST(Envelope, ErrorHasSeedShape) {
    ApiError err(ErrorCode::RESOURCE_EXHAUSTED, "Insufficient memory available for allocation",
                 "Requested 8GB, only 3GB available", {"memory"}, {"Reduce resource request size"},
                 {"Queue request for later execution"});
    json e = error_envelope("allocate", err);
    EXPECT_EQ(e["status"], "error");
    EXPECT_EQ(e["operation"], "allocate");
    EXPECT_EQ(e["error"]["code"], "RESOURCE_EXHAUSTED");
    EXPECT_EQ(e["error"]["message"], "Insufficient memory available for allocation");
    EXPECT_EQ(e["error"]["details"], "Requested 8GB, only 3GB available");
    EXPECT_EQ(e["error"]["affected_resources"], json({"memory"}));
    EXPECT_EQ(e["recovery_suggestions"], json({"Reduce resource request size"}));
    EXPECT_EQ(e["alternative_options"], json({"Queue request for later execution"}));
}

TEST(Envelope, ExecutionTimeUnits) {
    EXPECT_EQ(format_execution_time(45), "45us");
    EXPECT_EQ(format_execution_time(12'345), "12.3ms");
    EXPECT_EQ(format_execution_time(2'500'000), "2.50s");
}

TEST(ErrorCodes, AllNamed) {
    for (auto c : {ErrorCode::INVALID_REQUEST, ErrorCode::RESOURCE_EXHAUSTED, ErrorCode::POLICY_VIOLATION, ErrorCode::NOT_FOUND,
                   ErrorCode::PERMISSION_DENIED, ErrorCode::CONFLICT, ErrorCode::UNSUPPORTED, ErrorCode::BACKEND_ERROR})
        EXPECT_NE(to_string(c), "INTERNAL_ERROR");
}
