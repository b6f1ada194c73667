"""Individual deposits (个人申请存入) with two-stage review, appeals, and corrections of achievements."""
