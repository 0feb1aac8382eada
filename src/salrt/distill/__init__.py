"""Distillation into the real-time student: the teacher's cached maps and the student's data."""

from salrt.distill.data import SequenceDataset, cache_student_video
from salrt.distill.teacher import TeacherCacheError, TeacherMaps, teacher_identity

__all__ = ["SequenceDataset", "TeacherCacheError", "TeacherMaps", "cache_student_video", "teacher_identity"]
