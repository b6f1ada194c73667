"""Every text of the printed transcript and of the public verification page, Chinese first, then English — in one
place, keyed by message id, so that they can move to `.po` catalogues with the portal (issue 15) unchanged."""

from __future__ import annotations

__all__ = ["GROUPS", "KINDS", "LANGUAGES", "MESSAGES", "pick_language", "text"]

LANGUAGES = ("zh", "en")

MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "transcript.title": "成绩证明",
        "transcript.subtitle": "终身学习学分银行学习成果证明",
        "transcript.issuer": "出具机构",
        "transcript.learner": "姓名",
        "transcript.issued": "出具时间",
        "transcript.id": "证明编号",
        "transcript.records": "学习成果",
        "transcript.col.category": "类别",
        "transcript.col.institution": "机构",
        "transcript.col.title": "名称",
        "transcript.col.date": "取得日期",
        "transcript.col.credits": "学分/学时",
        "transcript.col.score": "成绩",
        "transcript.totals": "分类合计",
        "transcript.col.group": "类别",
        "transcript.col.count": "项数",
        "transcript.col.total_credits": "学分",
        "transcript.col.total_hours": "学时",
        "transcript.none": "（暂无已存入的学习成果）",
        "transcript.verify": "核验",
        "transcript.verify_help": "扫描二维码或访问以下网址核验本证明；本文件内嵌经数字签名的电子成绩单"
                                  "（transcript.jsonld），也可离线核验：creditnode verify 文件名.pdf",
        "transcript.seal": "出具机构（电子签章）",
        "transcript.no_id": "本证明不含身份证件号码。",
        "verify.title": "学习成果核验",
        "verify.intro": "核验学分银行出具的成绩证明或电子证书：粘贴电子证书（JSON），上传成绩证明 PDF，"
                        "或打开成绩证明上二维码的链接。",
        "verify.paste": "粘贴电子证书或电子成绩单（JSON）",
        "verify.upload": "上传成绩证明（PDF）",
        "verify.submit": "核验",
        "verify.result": "核验结果",
        "verify.valid": "有效",
        "verify.invalid": "无效",
        "verify.revoked": "已撤销",
        "verify.unchecked": "未能核验",
        "verify.issuer": "出具机构",
        "verify.learner": "姓名（证明所载）",
        "verify.issued": "出具时间",
        "verify.records": "学习成果",
        "verify.record_state": "状态",
        "verify.checks": "核验项目",
        "verify.not_found": "未找到该成绩证明。请核对网址。",
        "verify.bad_input": "无法读取所提交的内容",
        "verify.nothing": "请粘贴电子证书或选择 PDF 文件。",
        "verify.other_language": "English",
        "verify.unknown_issuer": "非联盟成员",
        "check.signature": "数字签名",
        "check.dates": "有效期",
        "check.status": "撤销状态",
        "check.inclusion": "账本存证",
        "check.issuer": "出具机构",
        "check.format": "格式",
    },
    "en": {
        "transcript.title": "Academic Transcript",
        "transcript.subtitle": "Record of learning outcomes, lifelong-learning credit bank",
        "transcript.issuer": "Issued by",
        "transcript.learner": "Name",
        "transcript.issued": "Issued on",
        "transcript.id": "Transcript",
        "transcript.records": "Learning outcomes",
        "transcript.col.category": "Category",
        "transcript.col.institution": "Institution",
        "transcript.col.title": "Title",
        "transcript.col.date": "Date",
        "transcript.col.credits": "Credits / hours",
        "transcript.col.score": "Score",
        "transcript.totals": "Totals by category",
        "transcript.col.group": "Category",
        "transcript.col.count": "Records",
        "transcript.col.total_credits": "Credits",
        "transcript.col.total_hours": "Hours",
        "transcript.none": "(no deposited learning outcomes yet)",
        "transcript.verify": "Verify",
        "transcript.verify_help": "Scan the QR code or open the address below. The signed electronic transcript "
                                  "(transcript.jsonld) is embedded in this PDF and verifies offline too: "
                                  "creditnode verify file.pdf",
        "transcript.seal": "Issuing body (electronic seal)",
        "transcript.no_id": "This transcript carries no identity document number.",
        "verify.title": "Verify a learning record",
        "verify.intro": "Check a transcript or credential issued by a credit bank: paste a credential (JSON), upload a "
                        "transcript PDF, or open the link of a transcript's QR code.",
        "verify.paste": "Paste a credential or electronic transcript (JSON)",
        "verify.upload": "Upload a transcript (PDF)",
        "verify.submit": "Verify",
        "verify.result": "Result",
        "verify.valid": "Valid",
        "verify.invalid": "Not valid",
        "verify.revoked": "Revoked",
        "verify.unchecked": "Could not be checked",
        "verify.issuer": "Issued by",
        "verify.learner": "Name (as printed)",
        "verify.issued": "Issued on",
        "verify.records": "Learning outcomes",
        "verify.record_state": "State",
        "verify.checks": "Checks",
        "verify.not_found": "No such transcript. Check the address.",
        "verify.bad_input": "What was submitted cannot be read",
        "verify.nothing": "Paste a credential or choose a PDF file.",
        "verify.other_language": "中文",
        "verify.unknown_issuer": "not a member of the federation",
        "check.signature": "Digital signature",
        "check.dates": "Validity period",
        "check.status": "Revocation status",
        "check.inclusion": "Ledger record",
        "check.issuer": "Issuer",
        "check.format": "Format",
    },
}

# Achievement kinds and credential groups, both languages.
KINDS = {
    "degree_course": ("学历教育课程", "Degree course"),
    "self_study_course": ("自学考试课程", "Self-study exam course"),
    "vocational_qualification": ("职业资格证书", "Vocational qualification"),
    "skill_level": ("职业技能等级证书", "Vocational skill level"),
    "training": ("培训证书", "Training certificate"),
    "community": ("社区教育", "Community education"),
    "informal": ("非正式学习", "Informal learning"),
    "university_course_certificate": ("大学课程证书", "University course certificate"),
    "cultural_leisure": ("文化休闲教育", "Cultural and leisure education"),
}
GROUPS = {
    "degree": ("学历教育", "Degree education"),
    "certificate": ("证书", "Certificates"),
    "training": ("培训", "Training"),
    "other": ("其他", "Other"),
}


def text(lang: str, key: str) -> str:
    """The message `key` in `lang` (Chinese when missing there; the key itself when unknown)."""
    return MESSAGES.get(lang, MESSAGES["zh"]).get(key) or MESSAGES["zh"].get(key, key)


def pick_language(query_lang: str | None, accept_language: str | None) -> str:
    """`?lang=` wins; else the first of Accept-Language's languages we have (by q); else Chinese."""
    if query_lang in LANGUAGES:
        return query_lang
    ranked = []
    for position, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-", 1)[0]
        if primary in LANGUAGES and q > 0:
            ranked.append((-q, position, primary))
    return sorted(ranked)[0][2] if ranked else "zh"
